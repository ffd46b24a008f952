"""PostgreSQL through psycopg2. Options: ``{"dsn"|"url"}`` or ``{"host", "port",
"database", "user", "password", "sslmode"}``. The target passes the egress policy
(``plugins.egress``) first, and libpq connects to the checked address (``hostaddr``).

Time limits: libpq's ``connect_timeout`` for connecting, and ``statement_timeout`` set
for each run's transaction, so the server cancels a query that outlives the run;
TCP keepalives and ``tcp_user_timeout`` detect a peer that vanished."""

import math

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from . import egress
from .errors import ConfigurationError, ConnectionFailed, QueryFailed, QueryTimeout
from .sql import SQLPlugin, required_option

_CONNECT_KEYS = {"host": "host", "port": "port", "database": "dbname", "dbname": "dbname",
                 "user": "user", "password": "password", "sslmode": "sslmode"}
#: libpq parameters a data source may set. Anything else (hostaddr, service files, passfile,
#: client certificates) names a place the egress policy did not check.
_ALLOWED_PARAMETERS = frozenset(_CONNECT_KEYS.values())


def connection_parameters(options):
    """libpq parameters of the data source (its DSN, or its options), checked against
    ``_ALLOWED_PARAMETERS``; ``dbname`` defaults to the user, as libpq does."""
    dsn = options.get("dsn") or options.get("url")
    if dsn:
        try:
            params = psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.ProgrammingError:
            raise ConfigurationError("The DSN is not a valid PostgreSQL connection string",
                                     code="invalid_options") from None
    else:
        required_option(options, "host")
        required_option(options, "database", "dbname")
        params = {_CONNECT_KEYS[key]: value for key, value in options.items()
                  if key in _CONNECT_KEYS and value not in (None, "")}
    unsupported = sorted(set(params) - _ALLOWED_PARAMETERS)
    if unsupported:
        raise ConfigurationError(f"Unsupported connection parameter(s): {', '.join(unsupported)}",
                                 code="invalid_options")
    if "," in str(params.get("host") or "") or "," in str(params.get("port") or ""):
        raise ConfigurationError("A data source connects to one host", code="invalid_options")
    params.setdefault("dbname", params.get("user"))
    return params


class PostgreSQLPlugin(SQLPlugin):
    kind = "postgresql"
    dialect = "postgresql"

    def connect(self, options, deadline):
        params = connection_parameters(options)
        target = egress.check(params.get("host"), params.get("port") or 5432, params.get("dbname"))
        # libpq takes whole seconds and treats anything below 2 as 2.
        connect_timeout = max(2, math.ceil(deadline.remaining()))
        # hostaddr: connect to the checked address; libpq still uses host for TLS checks.
        return psycopg2.connect(
            **params, hostaddr=target.address, connect_timeout=connect_timeout,
            application_name="tooljet-plugin",
            keepalives=1, keepalives_idle=30, keepalives_interval=5, keepalives_count=3,
            tcp_user_timeout=connect_timeout * 1000,
        )

    def test_connection(self, connection, deadline):
        _, rows, _ = self.execute_sql(connection, "SELECT version()", None, deadline)
        return {"server": rows[0][0]}

    def execute_sql(self, connection, sql, values, deadline):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)",
                               (f"{math.ceil(deadline.remaining() * 1000)}ms",))
                cursor.execute(sql, values)
                columns = [column.name for column in cursor.description] if cursor.description else None
                rows = cursor.fetchall() if columns is not None else []
                affected_rows = cursor.rowcount
            connection.commit()
        except BaseException:
            if not connection.closed:
                connection.rollback()
            raise
        return columns, rows, affected_rows

    def adapt(self, values):
        return {name: psycopg2.extras.Json(value) if isinstance(value, dict) else value
                for name, value in values.items()}

    def close(self, connection):
        connection.close()

    def translate_error(self, exc, phase):
        if isinstance(exc, psycopg2.errors.QueryCanceled):
            return QueryTimeout("The query was cancelled: it outlived its timeout")
        if not isinstance(exc, psycopg2.Error):
            return None
        if exc.pgcode is not None and phase != "connect":
            return QueryFailed(exc.diag.message_primary or "The PostgreSQL query failed")
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:300]
        if "timeout expired" in message:
            return QueryTimeout("Timed out connecting to the PostgreSQL server")
        if phase == "connect" or isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
            return ConnectionFailed(f"PostgreSQL connection failed: {message}")
        return QueryFailed(message or "The PostgreSQL query failed")
