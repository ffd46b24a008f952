"""The plugin contract and the one method that runs every plugin.

A plugin is a stateless object (one instance per kind, see ``registry``) that knows how
to open, test, use and close connections of one datasource kind. ``Plugin.execute`` owns
the orchestration of a run, the same for every kind:

    connect (or check out from the cache) -> execute -> serialize -> check in

and fills one ``RunRecord`` (duration per phase, status, bytes, connection create and
use time) that ``Plugin.report`` receives at the end: the single place where
instrumentation hooks into every plugin.
"""

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from telemetry import api as telemetry_api

from .errors import ConnectionFailed, EgressDenied, PluginError, QueryFailed, QueryTimeout
from .result import QueryResult, serialized_size, to_json_value

logger = logging.getLogger(__name__)

CONNECT, EXECUTE, SERIALIZE = PHASES = ("connect", "execute", "serialize")

#: Option keys whose values are secrets (or URLs that may carry one).
SECRET_OPTION_KEYS = frozenset({"password", "passwd", "token", "secret", "api_key", "url", "dsn", "headers"})


class Deadline:
    """The time limit of one run. Plugins pass ``remaining()`` to every blocking call."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds

    def left(self):
        return self.expires_at - time.monotonic()

    def expired(self):
        return self.left() <= 0

    def remaining(self, minimum=0.05):
        """Seconds left (at least ``minimum``, so a driver never gets 0 = no timeout);
        raises ``QueryTimeout`` when none are."""
        left = self.left()
        if left <= 0:
            raise self.timeout_error()
        return max(left, minimum)

    def timeout_error(self):
        return QueryTimeout(f"The query did not finish within {self.seconds:g} seconds")


@dataclass
class RunRecord:
    """What one run did, for instrumentation. ``result`` is ``success`` or an error code;
    ``connect_seconds`` is set only when a new connection was opened; ``use_seconds`` is
    how long the connection was checked out."""

    kind: str
    organization_id: object = None
    status: str = "success"
    result: str = "success"
    phases: dict = field(default_factory=dict)
    seconds: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    connect_seconds: float = None
    use_seconds: float = None
    current_phase: str = CONNECT

    @contextmanager
    def phase(self, name):
        self.current_phase = name
        started = time.perf_counter()
        # One span per phase (a no-op when tracing is off): the driver's own spans
        # (psycopg2, requests) become children of the execute phase.
        with telemetry_api.span(f"plugin.{name}", **{"plugin.kind": self.kind}):
            try:
                yield
            finally:
                self.phases[name] = time.perf_counter() - started

    def failed(self, error):
        self.status = "error"
        self.result = error.code


class Plugin:
    """Base class of datasource plugins.

    Subclasses set ``kind`` and implement:

    - ``connect(options, deadline) -> connection``: open a connection within
      ``deadline.remaining()``; raise ``ConfigurationError`` for unusable options.
    - ``test_connection(connection, deadline) -> dict``: a cheap round trip; returns
      facts to show (e.g. ``{"server": "PostgreSQL 15.4"}``).
    - ``run(connection, query, parameters, deadline) -> QueryResult``: one query, values
      as the driver returns them (``serialize`` makes them JSON-safe); must not outlive
      ``deadline``. ``query`` is the data query's options dict, ``parameters`` plain values.
    - ``close(connection)``.
    - optionally ``translate_error(exc, phase) -> PluginError | None`` to map driver
      exceptions; anything unmapped becomes a generic error of its phase.

    Plugins hold no per-connection state: a connection is used by one thread at a time
    (the cache checks it out exclusively) and may be reused by later runs.
    """

    kind = ""

    def connect(self, options, deadline):
        raise NotImplementedError

    def test_connection(self, connection, deadline):
        raise NotImplementedError

    def run(self, connection, query, parameters, deadline):
        raise NotImplementedError

    def close(self, connection):
        raise NotImplementedError

    def translate_error(self, exc, phase):
        return None

    def __repr__(self):
        return f"<{type(self).__name__} kind={self.kind!r}>"

    # ------------------------------------------------------------------ orchestration

    def execute(self, *, cache, data_source_id, options, query, parameters, deadline, organization_id=None):
        """Runs ``query`` on a cached connection of the data source; returns a
        JSON-serializable ``QueryResult`` or raises a ``PluginError`` whose message is
        free of the options' secrets. A connection that failed is closed, not cached."""
        record = RunRecord(self.kind, organization_id)
        started = time.perf_counter()
        lease = None
        try:
            with record.phase(CONNECT):
                lease = cache.checkout(data_source_id, self, options, deadline, organization_id)
            record.connect_seconds = lease.connect_seconds
            record.bytes_sent = serialized_size([query, parameters])
            with record.phase(EXECUTE):
                raw_result = self.run(lease.connection, query, parameters, deadline)
            with record.phase(SERIALIZE):
                result = self.serialize(raw_result)
            record.bytes_received = result.bytes
            return result
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a PluginError
            error = self.plugin_error(exc, record.current_phase, options, deadline)
            record.failed(error)
            raise error from None
        finally:
            if lease is not None:
                record.use_seconds = cache.checkin(lease, broken=record.status != "success")
            record.seconds = time.perf_counter() - started
            self.report(record)

    def check(self, options, deadline):
        """Opens a fresh connection, tests it and closes it: ``{"ok": True, ...}``."""
        connection = None
        phase = CONNECT
        try:
            connection = self.connect(options, deadline)
            phase = EXECUTE
            return {"ok": True, **self.test_connection(connection, deadline)}
        except Exception as exc:  # noqa: BLE001
            error = self.plugin_error(exc, phase, options, deadline)
            if isinstance(error, EgressDenied):
                # Refused targets are counted wherever they are tried, connection tests included.
                record = RunRecord(self.kind)
                record.failed(error)
                self.report(record)
            raise error from None
        finally:
            if connection is not None:
                self.close_quietly(connection)

    def serialize(self, raw_result):
        """``raw_result`` with JSON-safe values and its serialized size in ``bytes``."""
        result = QueryResult(
            columns=[str(column) for column in raw_result.columns],
            rows=[to_json_value(list(row)) for row in raw_result.rows],
            row_count=raw_result.row_count,
            data=to_json_value(raw_result.data),
            metadata=to_json_value(raw_result.metadata),
        )
        result.bytes = serialized_size([result.columns, result.rows, result.data])
        return result

    def report(self, record):
        """Called once per run with its ``RunRecord``: the hook for instrumentation (every
        plugin reports to telemetry here). Must not raise."""
        logger.debug("%s run: %s in %.3fs %s", record.kind, record.result, record.seconds, record.phases)
        try:
            telemetry_api.record_plugin_run(
                record.kind, record.organization_id, record.status, record.result, record.seconds,
                phases=record.phases, bytes_sent=record.bytes_sent, bytes_received=record.bytes_received,
                connect_seconds=record.connect_seconds, use_seconds=record.use_seconds,
            )
        except Exception as exc:  # noqa: BLE001 - telemetry never fails a run
            logger.debug("telemetry report failed: %r", exc)

    def close_quietly(self, connection):
        try:
            self.close(connection)
        except Exception as exc:  # noqa: BLE001 - a connection that fails to close is gone anyway
            logger.debug("%s: closing a connection failed: %s", self.kind, type(exc).__name__)

    def plugin_error(self, exc, phase, options, deadline):
        """``exc`` as a ``PluginError`` whose message holds none of ``options``' secrets."""
        error = exc if isinstance(exc, PluginError) else self.translate_error(exc, phase)
        if not isinstance(exc, PluginError) and deadline.expired():
            # A driver failing after the deadline failed because of it (a socket timeout
            # surfacing as a lost connection, say).
            error = deadline.timeout_error()
        if error is None:
            if phase == CONNECT:
                error = ConnectionFailed(f"Could not connect to the {self.kind} data source")
            else:
                logger.warning("%s plugin: unexpected %s during %s", self.kind, type(exc).__name__, phase)
                error = QueryFailed(f"The {self.kind} query failed", code="plugin_error")
        error.message = redact(error.message, options)
        error.args = (error.message,)
        return error


def secret_values(options):
    """The strings that must never appear in a message: secret option values, header
    values, and the password of any URL option (raw and percent-encoded)."""
    found = set()
    for key, value in (options or {}).items():
        if key not in SECRET_OPTION_KEYS:
            continue
        values = value.values() if isinstance(value, dict) else [value]
        for item in values:
            if not isinstance(item, str) or not item:
                continue
            found.add(item)
            if "://" in item:
                try:
                    password = urlsplit(item).password
                except ValueError:
                    password = None
                if password:
                    found.update({password, unquote(password), quote(unquote(password), safe="")})
    return found


def redact(message, options):
    # Longest first, so a URL is replaced whole before the password inside it.
    for secret in sorted(secret_values(options), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message
