"""PostgreSQL through psycopg2. Options: ``{"dsn"|"url"}`` or ``{"host", "port",
"database", "user", "password", "sslmode"}``.

Time limits: libpq's ``connect_timeout`` for connecting, and ``statement_timeout`` set
for each run's transaction, so the server cancels a query that outlives the run;
TCP keepalives and ``tcp_user_timeout`` detect a peer that vanished."""

import math

import psycopg2
import psycopg2.errors
import psycopg2.extras

from .errors import ConnectionFailed, QueryFailed, QueryTimeout
from .sql import SQLPlugin, required_option

_CONNECT_KEYS = {"host": "host", "port": "port", "database": "dbname", "dbname": "dbname",
                 "user": "user", "password": "password", "sslmode": "sslmode"}


class PostgreSQLPlugin(SQLPlugin):
    kind = "postgresql"
    dialect = "postgresql"

    def connect(self, options, deadline):
        # libpq takes whole seconds and treats anything below 2 as 2.
        connect_timeout = max(2, math.ceil(deadline.remaining()))
        settings = {
            "connect_timeout": connect_timeout,
            "application_name": "tooljet-plugin",
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 5, "keepalives_count": 3,
            "tcp_user_timeout": connect_timeout * 1000,
        }
        dsn = options.get("dsn") or options.get("url")
        if dsn:
            return psycopg2.connect(dsn, **settings)
        required_option(options, "host")
        required_option(options, "database", "dbname")
        params = {_CONNECT_KEYS[key]: value for key, value in options.items()
                  if key in _CONNECT_KEYS and value not in (None, "")}
        return psycopg2.connect(**params, **settings)

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
