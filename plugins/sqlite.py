"""SQLite files through the standard library. Options: ``{"path": "/srv/data.sqlite3"}``
(an existing file inside ``PLUGINS["SQLITE_DIRECTORY"]``; it is never created).

Confinement: the path is resolved (symlinks, ``..``; a relative path is taken inside the
directory) before it is checked against the directory and the platform's own SQLite
databases; the file is opened read-only (``mode=ro``) and an authorizer refuses
``ATTACH``/``DETACH`` (which ``VACUUM INTO`` also needs), ``load_extension`` and every
``PRAGMA`` but a few that only read the schema.

Time limit: a progress handler aborts a statement once the run's deadline has passed;
``busy_timeout`` bounds the wait for another writer's lock."""

import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from . import conf
from .errors import ConfigurationError, ConnectionFailed, EgressDenied, QueryFailed, QueryTimeout
from .sql import SQLPlugin, required_option

# SQLite virtual machine instructions between two deadline checks (about a millisecond).
PROGRESS_INSTRUCTIONS = 10_000
#: Pragmas a query may run: they read the schema, or are the plugin's own busy_timeout.
ALLOWED_PRAGMAS = frozenset({
    "busy_timeout", "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "collation_list", "function_list",
})
_REFUSED_FUNCTIONS = frozenset({"load_extension"})


def _authorizer(action, first, second, database, trigger):
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (first or "").lower() not in ALLOWED_PRAGMAS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (second or "").lower() in _REFUSED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def confined_path(path):
    """``path`` resolved, when it names an existing file inside ``SQLITE_DIRECTORY`` that is
    not one of the platform's own databases; ``EgressDenied`` otherwise."""
    directory = conf.get("SQLITE_DIRECTORY")
    if not directory:
        raise EgressDenied("no directory is configured for SQLite files (PLUGINS['SQLITE_DIRECTORY'])",
                           rule="sqlite_directory")
    root = Path(directory).resolve()
    try:
        resolved = (root / str(path)).resolve()
    except (OSError, RuntimeError, ValueError):
        raise ConfigurationError("The SQLite path is not valid", code="invalid_options") from None
    if not resolved.is_relative_to(root):
        raise EgressDenied("the file is outside the directory for SQLite files", rule="sqlite_directory")
    if not resolved.is_file():
        raise ConnectionFailed("The SQLite file does not exist")
    for database in settings.DATABASES.values():
        names = (database.get("NAME"), (database.get("TEST") or {}).get("NAME"))
        if database.get("ENGINE", "").endswith("sqlite3") and any(
                name and str(name) != ":memory:" and Path(name).resolve() == resolved for name in names):
            raise EgressDenied("the file is the platform's own database", rule="platform_database")
    return resolved


class SQLitePlugin(SQLPlugin):
    kind = "sqlite"
    dialect = "sqlite"
    paramstyle = "named"

    def connect(self, options, deadline):
        path = confined_path(required_option(options, "path", "database"))
        # The connection is cached and later used by other threads, one at a time.
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=deadline.remaining(),
                                     isolation_level=None, check_same_thread=False)
        connection.set_authorizer(_authorizer)
        return connection

    def test_connection(self, connection, deadline):
        _, rows, _ = self.execute_sql(connection, "SELECT sqlite_version()", {}, deadline)
        return {"server": f"SQLite {rows[0][0]}"}

    def execute_sql(self, connection, sql, values, deadline):
        expires_at = deadline.expires_at
        connection.execute(f"PRAGMA busy_timeout = {int(deadline.remaining() * 1000)}")
        connection.set_progress_handler(lambda: time.monotonic() >= expires_at, PROGRESS_INSTRUCTIONS)
        try:
            cursor = connection.execute(sql, values)
            columns = [column[0] for column in cursor.description] if cursor.description else None
            rows = cursor.fetchall() if columns is not None else []
            return columns, rows, cursor.rowcount
        finally:
            connection.set_progress_handler(None, PROGRESS_INSTRUCTIONS)

    def close(self, connection):
        connection.close()

    def translate_error(self, exc, phase):
        if not isinstance(exc, sqlite3.Error):
            return None
        message = str(exc)
        if message == "interrupted":
            return QueryTimeout("The SQLite query did not finish within its timeout")
        if phase == "connect":
            return ConnectionFailed(f"Could not open the SQLite database: {message}")
        return QueryFailed(message[:300])
