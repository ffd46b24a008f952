"""MySQL and MariaDB through PyMySQL. Options: ``{"dsn"|"url": "mysql://..."}`` or
``{"host", "port", "database", "user", "password"}``. The target passes the egress policy
(``plugins.egress``) first, and PyMySQL connects to the checked address.

Time limits: PyMySQL's connect/read/write socket timeouts, reset to the time left before
each run; on MariaDB also ``max_statement_time`` (MySQL: ``max_execution_time``) a little
shorter, so the server stops the statement rather than leaving it running."""

from urllib.parse import unquote, urlsplit

import pymysql

from . import egress
from .errors import ConnectionFailed, QueryFailed, QueryTimeout
from .sql import SQLPlugin, required_option

# The server gets 90% of the time left, so its own clean error usually arrives first.
SERVER_SHARE = 0.9
_TIMEOUT_ERROR_CODES = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_CLIENT_ERROR_CODES = range(2000, 3000)


def _options_from_url(url):
    parts = urlsplit(url)
    return {
        "host": parts.hostname, "port": parts.port,
        "user": unquote(parts.username or ""), "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")),
    }


class MySQLPlugin(SQLPlugin):
    kind = "mysql"
    dialect = "mysql"

    def connect(self, options, deadline):
        url = options.get("dsn") or options.get("url")
        params = {**options, **_options_from_url(url)} if url else options
        database = params.get("database") or None
        target = egress.check(required_option(params, "host"), params.get("port") or 3306, database)
        timeout = deadline.remaining()
        return pymysql.connect(
            host=target.address,
            port=target.port,
            user=params.get("user") or None,
            password=params.get("password") or "",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
        )

    def test_connection(self, connection, deadline):
        _, rows, _ = self.execute_sql(connection, "SELECT VERSION()", None, deadline)
        return {"server": rows[0][0]}

    def execute_sql(self, connection, sql, values, deadline):
        remaining = deadline.remaining()
        # PyMySQL takes its socket timeouts only as constructor arguments; a cached
        # connection needs this run's.
        connection._read_timeout = connection._write_timeout = remaining
        with connection.cursor() as cursor:
            if "mariadb" in connection.get_server_info().lower():
                cursor.execute("SET SESSION max_statement_time = %s", (round(remaining * SERVER_SHARE, 3),))
            else:
                cursor.execute("SET SESSION max_execution_time = %s", (int(remaining * SERVER_SHARE * 1000),))
            cursor.execute(sql, values)
            columns = [column[0] for column in cursor.description] if cursor.description else None
            rows = list(cursor.fetchall()) if columns is not None else []
            return columns, rows, cursor.rowcount

    def close(self, connection):
        connection.close()

    def translate_error(self, exc, phase):
        if not isinstance(exc, pymysql.err.MySQLError):
            return None
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        if code in _TIMEOUT_ERROR_CODES or "timed out" in message:
            return QueryTimeout("The MySQL query did not finish within its timeout")
        if phase == "connect" or code is None or code in _CLIENT_ERROR_CODES or code == 1045:
            return ConnectionFailed(f"MySQL connection failed: {message}"[:300])
        return QueryFailed(message[:300])
