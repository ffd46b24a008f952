"""Redis through redis-py. Options: ``{"url": "redis://..."}`` or ``{"host", "port", "db",
"username"}``, secret ``password``. Query: ``{"command": "GET", "args": ["user::id"]}`` or
``{"command": ["GET", ":key"]}``; an argument that is exactly ``:name`` or ``{{name}}``
becomes that parameter's value (sent as one argument, never parsed as a command).

The target passes the egress policy (``plugins.egress``) first, and the client connects to
the checked address; queries run data commands only (``ALLOWED_COMMANDS``).

Time limits: socket connect and read timeouts, reset to the time left before each run;
no retries (a retry would multiply the time a hung server holds the caller)."""

import re
import shlex
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import egress
from .base import Plugin
from .errors import ConfigurationError, ConnectionFailed, QueryFailed, QueryTimeout
from .result import QueryResult

#: What a query may run: commands that read or write the data of the source's own
#: database. Server administration (CONFIG, CLIENT, MODULE, DEBUG, ACL, SHUTDOWN,
#: REPLICAOF/SLAVEOF, MONITOR, MIGRATE), keyspace-wide commands (KEYS, FLUSHALL, FLUSHDB,
#: SWAPDB), scripts (EVAL, FUNCTION, SCRIPT) and commands that change what the next run on
#: a cached connection sees (SELECT, AUTH, MULTI, SUBSCRIBE, ...) are refused.
ALLOWED_COMMANDS = frozenset("""
    PING ECHO TIME
    GET SET SETNX SETEX PSETEX MGET MSET MSETNX GETSET GETDEL GETEX GETRANGE SETRANGE STRLEN APPEND
    INCR INCRBY INCRBYFLOAT DECR DECRBY LCS
    DEL UNLINK EXISTS TYPE TTL PTTL EXPIRE PEXPIRE EXPIREAT PEXPIREAT EXPIRETIME PEXPIRETIME PERSIST
    RENAME RENAMENX COPY TOUCH SCAN
    HGET HSET HSETNX HMGET HMSET HDEL HEXISTS HGETALL HKEYS HVALS HLEN HINCRBY HINCRBYFLOAT HSTRLEN
    HRANDFIELD HSCAN
    LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LLEN LINDEX LSET LINSERT LREM LTRIM LPOS LMOVE LMPOP
    RPOPLPUSH BLPOP BRPOP BLMOVE BLMPOP BRPOPLPUSH BZPOPMIN BZPOPMAX BZMPOP
    SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER SINTERCARD SUNION SDIFF
    SINTERSTORE SUNIONSTORE SDIFFSTORE SSCAN
    ZADD ZREM ZSCORE ZMSCORE ZINCRBY ZCARD ZCOUNT ZLEXCOUNT ZRANGE ZRANGESTORE ZRANGEBYSCORE
    ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZRANK ZREVRANK ZPOPMIN ZPOPMAX ZMPOP
    ZRANDMEMBER ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ZUNION ZINTER ZDIFF ZUNIONSTORE
    ZINTERSTORE ZDIFFSTORE ZINTERCARD ZSCAN
    XADD XRANGE XREVRANGE XLEN XDEL XTRIM XREAD XACK XCLAIM XAUTOCLAIM XPENDING XGROUP XINFO
    PFADD PFCOUNT PFMERGE
    GEOADD GEODIST GEOHASH GEOPOS GEOSEARCH GEOSEARCHSTORE
    SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO
""".split())
_ARGUMENT_PARAMETER = re.compile(r":([A-Za-z_]\w*)|\{\{\s*(\w+)\s*\}\}")


def connection_parameters(options):
    """``{"host", "port", "db", "username", "password"}`` of the data source, from its
    ``redis://`` URL or its options (the secret ``password`` wins over the URL's)."""
    url = options.get("url")
    if url:
        try:
            parts = urlsplit(str(url))
            port = parts.port
        except ValueError:
            raise ConfigurationError("The Redis URL is not valid", code="invalid_options") from None
        if parts.scheme != "redis":
            raise ConfigurationError("The Redis URL must start with redis:// (TLS and local sockets are "
                                     "not supported)", code="invalid_options")
        params = {"host": parts.hostname, "port": port, "db": parts.path.strip("/"),
                  "username": unquote(parts.username or ""), "password": unquote(parts.password or "")}
    else:
        if not options.get("host"):
            raise ConfigurationError("The data source needs the option 'host' or 'url'", code="invalid_options")
        params = {key: options.get(key) for key in ("host", "port", "db", "username", "password")}
    if options.get("password"):
        params["password"] = options["password"]
    try:
        params["port"] = int(params.get("port") or 6379)
        params["db"] = int(params.get("db") or 0)
    except (TypeError, ValueError):
        raise ConfigurationError("The Redis port and db must be numbers", code="invalid_options") from None
    return params


class RedisPlugin(Plugin):
    kind = "redis"

    def connect(self, options, deadline):
        params = connection_parameters(options)
        target = egress.check(params["host"], params["port"], params["db"])
        timeout = deadline.remaining()
        client = redis.Redis(
            host=target.address, port=target.port, db=params["db"], username=params["username"] or None,
            password=params["password"] or None, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), single_connection_client=True,
        )
        client.ping()
        return client

    def test_connection(self, connection, deadline):
        self._set_timeout(connection, deadline)
        return {"server": f"Redis {connection.info('server').get('redis_version', '')}".strip()}

    def run(self, connection, query, parameters, deadline):
        command, *args = self._command(query, parameters)
        if command.upper() not in ALLOWED_COMMANDS:
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
