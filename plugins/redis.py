"""Redis through redis-py. Options: ``{"url"}`` or ``{"host", "port", "db", "username"}``,
secret ``password``. Query: ``{"command": "GET", "args": ["user::id"]}`` or
``{"command": ["GET", ":key"]}``; an argument that is exactly ``:name`` or ``{{name}}``
becomes that parameter's value (sent as one argument, never parsed as a command).

Time limits: socket connect and read timeouts, reset to the time left before each run;
no retries (a retry would multiply the time a hung server holds the caller)."""

import re
import shlex

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .base import Plugin
from .errors import ConfigurationError, ConnectionFailed, QueryFailed, QueryTimeout
from .result import QueryResult

#: Commands that would change what the next run on a cached connection sees, or block it.
FORBIDDEN_COMMANDS = frozenset({
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SELECT", "QUIT", "RESET", "HELLO",
    "AUTH", "SYNC", "PSYNC", "MULTI", "WATCH",
})
_ARGUMENT_PARAMETER = re.compile(r":([A-Za-z_]\w*)|\{\{\s*(\w+)\s*\}\}")


class RedisPlugin(Plugin):
    kind = "redis"

    def connect(self, options, deadline):
        timeout = deadline.remaining()
        settings = {
            "socket_timeout": timeout, "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0), "single_connection_client": True,
        }
        if options.get("password"):
            settings["password"] = options["password"]
        if options.get("url"):
            client = redis.Redis.from_url(options["url"], **settings)
        else:
            if not options.get("host"):
                raise ConfigurationError("The data source needs the option 'host' or 'url'", code="invalid_options")
            client = redis.Redis(host=options["host"], port=int(options.get("port") or 6379),
                                 db=int(options.get("db") or 0), username=options.get("username") or None,
                                 **settings)
        client.ping()
        return client

    def test_connection(self, connection, deadline):
        self._set_timeout(connection, deadline)
        return {"server": f"Redis {connection.info('server').get('redis_version', '')}".strip()}

    def run(self, connection, query, parameters, deadline):
        command, *args = self._command(query, parameters)
        if command.upper() in FORBIDDEN_COMMANDS:
            raise QueryFailed(f"The Redis command {command.upper()} is not allowed here", code="command_not_allowed")
        self._set_timeout(connection, deadline)
        reply = connection.execute_command(command, *args)
        return QueryResult(data=reply, row_count=len(reply) if isinstance(reply, (list, dict, set)) else 1)

    def close(self, connection):
        connection.close()

    def translate_error(self, exc, phase):
        if isinstance(exc, redis.AuthenticationError):
            return ConnectionFailed("Redis rejected the credentials")
        if isinstance(exc, redis.TimeoutError):
            return QueryTimeout("Redis did not answer within the timeout")
        if isinstance(exc, redis.ConnectionError):
            return ConnectionFailed(f"Could not connect to Redis: {exc}"[:300])
        if isinstance(exc, redis.ResponseError):
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                return ConnectionFailed("Redis rejected the credentials")
            return QueryFailed(f"Redis error: {exc}"[:300])
        if isinstance(exc, redis.RedisError) and phase == "connect":
            return ConnectionFailed("Could not connect to Redis")
        return None

    @staticmethod
    def _set_timeout(client, deadline):
        remaining = deadline.remaining()
        client.connection.socket_timeout = remaining
        client.connection.update_current_socket_timeout(remaining)

    @staticmethod
    def _command(query, parameters):
        command = query.get("command")
        args = query.get("args") or []
        if isinstance(command, str) and not args:
            command = shlex.split(command)
        parts = ([*command] if isinstance(command, list) else [command]) + list(args)
        if not parts or not isinstance(parts[0], str) or not parts[0].strip():
            raise ConfigurationError("The query needs a Redis 'command'", code="invalid_query")
        return [parts[0], *(_argument(part, parameters) for part in parts[1:])]


def _argument(part, parameters):
    if not isinstance(part, str):
        return part if isinstance(part, (int, float, bytes)) else str(part)
    match = _ARGUMENT_PARAMETER.fullmatch(part)
    if not match:
        return part
    name = match.group(1) or match.group(2)
    if name not in parameters:
        raise QueryFailed(f"Missing query parameter(s): {name}", code="missing_parameter")
    value = parameters[name]
    return value if isinstance(value, (str, int, float, bytes)) else str(value)
