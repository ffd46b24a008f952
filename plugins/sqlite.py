"""SQLite files through the standard library. Options: ``{"path": "/srv/data.sqlite3"}``
(an existing file; it is never created).

Time limit: a progress handler aborts a statement once the run's deadline has passed;
``busy_timeout`` bounds the wait for another writer's lock."""

import sqlite3
import time
from urllib.parse import quote

from .errors import ConnectionFailed, QueryFailed, QueryTimeout
from .sql import SQLPlugin, required_option

# SQLite virtual machine instructions between two deadline checks (about a millisecond).
PROGRESS_INSTRUCTIONS = 10_000


class SQLitePlugin(SQLPlugin):
    kind = "sqlite"
    dialect = "sqlite"
    paramstyle = "named"

    def connect(self, options, deadline):
        path = str(required_option(options, "path", "database"))
        # The connection is cached and later used by other threads, one at a time.
        return sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=deadline.remaining(),
                               isolation_level=None, check_same_thread=False)

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
