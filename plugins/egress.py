"""Where a tenant's data source may connect: the egress policy of the network plugins.

``check(host, port, database=None)`` is called by every network plugin (PostgreSQL,
MySQL, Redis, REST) before it opens a socket. It resolves ``host`` and refuses the target,
with an ``EgressDenied`` naming the rule, when any address it resolves to is

- one of the platform's own endpoints (``platform_database``, ``platform_broker``,
  ``platform_cache``, ``platform_web``): derived from ``DATABASES``, ``CELERY_BROKER_URL``,
  ``CELERY_RESULT_BACKEND``, ``CACHES``, ``PLUGINS["EGRESS_PLATFORM_ADDRESSES"]`` (where the
  web server listens) and the exact names of ``ALLOWED_HOSTS``;
- not a public address: ``unspecified``, ``loopback``, ``link_local``, ``multicast``,
  ``private`` (RFC 1918, ULA, ...), ``reserved`` or ``non_public`` (shared, ...);

unless ``PLUGINS["EGRESS_ALLOWLIST"]`` allows it. Entries are networks (``10.0.0.0/8``,
``fd00::/8``, ``192.0.2.7``: any port there) or ``host:port`` (``db.internal:5432``,
``[::1]:6379``), optionally with a database (``127.0.0.1:5432/demo_sample``; a Redis db
number for Redis): that database only. A platform endpoint is opened only by an entry
naming it exactly (its port, and its database when it has one): a network or a
``host:port`` entry never opens the platform's own database on a shared server.

The caller connects to the returned, checked address (never to the name again), so a
name that resolves differently at connect time cannot slip through.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import conf
from .errors import ConfigurationError, ConnectionFailed, EgressDenied

#: Non-public address classes, in the order their rule is reported.
ADDRESS_RULES = (
    ("unspecified", "an unspecified address"),
    ("loopback", "a loopback address"),
    ("link_local", "a link-local address"),
    ("multicast", "a multicast address"),
    ("private", "a private address"),
    ("reserved", "a reserved address"),
)
PLATFORM_RULES = {
    "platform_database": "the platform's own database",
    "platform_broker": "the platform's Celery broker or result store",
    "platform_cache": "the platform's cache",
    "platform_web": "the platform's own web server",
}
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "mysql": 3306, "redis": 6379,
                  "rediss": 6379, "amqp": 5672, "amqps": 5671, "memcached": 11211, "pymemcache": 11211}
#: How long the platform's own host names stay resolved (they are looked up on every check).
PLATFORM_RESOLVE_SECONDS = 60


@dataclass(frozen=True)
class Endpoint:
    """One of the platform's own endpoints; ``database`` None means the whole server."""

    host: str
    port: int
    database: str | None
    rule: str


@dataclass(frozen=True)
class AllowEntry:
    """One ``EGRESS_ALLOWLIST`` entry: a network, or a host and port (and database)."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    host: str = ""
    port: int | None = None
    database: str | None = None

    @classmethod
    def parse(cls, text: str) -> "AllowEntry":
        text = text.strip()
        try:
            return cls(network=ipaddress.ip_network(text.strip("[]"), strict=False))
        except ValueError:
            pass
        try:
            parts = urlsplit(f"//{text}")
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or not parts.hostname or port is None:
            raise ValueError(f"PLUGINS['EGRESS_ALLOWLIST'] entry {text!r} is neither a network nor "
                             "host:port[/database]")
        return cls(host=parts.hostname, port=port, database=unquote(parts.path.lstrip("/")) or None)

    def allows(self, address, port, database, endpoint=None):
        """Whether this entry allows ``address:port`` (``database``); a platform
        ``endpoint`` there needs an entry naming it exactly."""
        if self.network is not None:
            return endpoint is None and address in self.network
        if self.port != port or address not in _resolve_cached(self.host):
            return False
        if self.database is not None:
            return self.database == database
        return endpoint is None or endpoint.database is None


@dataclass(frozen=True)
class Target:
    """A checked target: connect to ``address`` (an IP literal), never to ``host`` again."""

    host: str
    port: int
    address: str


def check(host, port, database=None) -> Target:
    """Resolves ``host`` and returns the checked ``Target`` to connect to; raises
    ``EgressDenied`` when the policy refuses any address ``host`` resolves to, or
    ``ConnectionFailed`` when it does not resolve."""
    if not isinstance(host, str) or not host.strip():
        raise ConfigurationError("The data source needs a host", code="invalid_options")
    host = host.strip()
    if host.startswith(("/", "@")):
        raise EgressDenied(f"{host} is a local socket, not a network address", rule="unix_socket")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ConfigurationError("The port must be a number", code="invalid_options") from None
    if not 0 < port < 65536:
        raise ConfigurationError("The port must be between 1 and 65535", code="invalid_options")
    database = None if database in (None, "") else str(database)
    addresses = _resolve(host, port)
    if not addresses:
        raise ConnectionFailed(f"Could not resolve the host {host}", code="dns_failed")
    endpoints = platform_endpoints()
    allowlist = allow_entries()
    for address in addresses:
        _check_address(host, address, port, database, endpoints, allowlist)
    return Target(host, port, str(addresses[0]))


def _check_address(host, address, port, database, endpoints, allowlist):
    shown = f"{host}:{port}" if host == str(address) else f"{host}:{port} ({address})"
    for endpoint in endpoints:
        if _is_endpoint(endpoint, host, address, port, database):
            if any(entry.allows(address, port, database, endpoint) for entry in allowlist):
                return
            raise EgressDenied(f"{shown} is {PLATFORM_RULES[endpoint.rule]}", rule=endpoint.rule)
    if any(entry.allows(address, port, database) for entry in allowlist):
        return
    for rule, description in ADDRESS_RULES:
        if getattr(address, f"is_{rule}"):
            raise EgressDenied(f"{shown} is {description}", rule=rule)
    if not address.is_global:
        raise EgressDenied(f"{shown} is not a public address", rule="non_public")


def _is_endpoint(endpoint, host, address, port, database):
    if endpoint.port != port:
        return False
    if endpoint.database is not None and database is not None and endpoint.database != database:
        return False
    return host.lower().rstrip(".").strip("[]") == endpoint.host or address in _resolve_cached(endpoint.host)


def _normalized(address_text):
    address = ipaddress.ip_address(address_text.split("%", 1)[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _resolve(host, port=None):
    """Every address ``host`` resolves to (IPv4-mapped IPv6 as IPv4), in resolver order."""
    try:
        return [_normalized(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    addresses = []
    for info in infos:
        address = _normalized(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _resolve_cached(host):
    return _resolve_for_a_while(host, int(time.monotonic() // PLATFORM_RESOLVE_SECONDS))


@lru_cache(maxsize=256)
def _resolve_for_a_while(host, _period):
    return frozenset(_resolve(host))


@lru_cache(maxsize=1)
def allow_entries():
    """The parsed ``PLUGINS["EGRESS_ALLOWLIST"]`` (a string is split on commas)."""
    entries = conf.get("EGRESS_ALLOWLIST") or []
    if isinstance(entries, str):
        entries = entries.split(",")
    return tuple(AllowEntry.parse(entry) for entry in entries if entry.strip())


def platform_endpoints():
    """The platform's own endpoints, from its settings (read on every check: test runs
    rename the databases in place)."""
    endpoints = []
    for database in settings.DATABASES.values():
        vendor = database.get("ENGINE", "").rsplit(".", 1)[-1]
        if vendor in ("postgresql", "mysql"):
            host = database.get("HOST") or "localhost"
            if not host.startswith("/"):
                endpoints.append(Endpoint(host, int(database.get("PORT") or _DEFAULT_PORTS[vendor]),
                                          str(database.get("NAME") or "") or None, "platform_database"))
    for setting, rule in (("CELERY_BROKER_URL", "platform_broker"), ("CELERY_RESULT_BACKEND", "platform_broker")):
        for url in str(getattr(settings, setting, "") or "").split(";"):
            endpoints += _url_endpoints(url, rule)
    for cache in getattr(settings, "CACHES", {}).values():
        backend = cache.get("BACKEND", "").lower()
        if "redis" not in backend and "memcache" not in backend:
            continue  # in process, or files
        locations = cache.get("LOCATION") or []
        for location in [locations] if isinstance(locations, str) else locations:
            endpoints += _url_endpoints(location if "://" in location else f"memcached://{location}",
                                        "platform_cache")
    for address in conf.get("EGRESS_PLATFORM_ADDRESSES") or []:
        for endpoint in _url_endpoints(f"http://{address}", "platform_web"):
            if endpoint.host in ("0.0.0.0", "::"):
                # Listening on every address: at least loopback and the machine's own name.
                endpoints += [Endpoint(host, endpoint.port, None, "platform_web")
                              for host in ("127.0.0.1", "::1", socket.gethostname())]
            else:
                endpoints.append(endpoint)
    # The names the platform answers to, on the web ports (HTTP, HTTPS and where it listens).
    web_ports = {80, 443} | {endpoint.port for endpoint in endpoints if endpoint.rule == "platform_web"}
    for name in getattr(settings, "ALLOWED_HOSTS", []):
        name = name.strip().lower().rstrip(".").strip("[]")
        if name and name != "*" and not name.startswith("."):
            endpoints += [Endpoint(name, port, None, "platform_web") for port in sorted(web_ports)]
    return endpoints


def _url_endpoints(url, rule):
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return []
    # Celery's SQLAlchemy result backend is db+<dialect>://, a driver is <dialect>+<driver>://.
    scheme = parts.scheme.removeprefix("db+").split("+")[0]
    if not parts.hostname or (port is None and scheme not in _DEFAULT_PORTS):
        return []
    database = parts.path.strip("/") or ("0" if scheme.startswith("redis") else None)
    return [Endpoint(parts.hostname, port or _DEFAULT_PORTS[scheme], database, rule)]


@receiver(setting_changed)
def _reset(*, setting, **kwargs):
    if setting == "PLUGINS":
        allow_entries.cache_clear()
