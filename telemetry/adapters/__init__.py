"""Adapters: the only place telemetry touches a third-party library's private internals.

Telemetry reads and writes a few private attributes of prometheus-client and of the
OpenTelemetry SDK on paths where the public API would cost a copy or a call per item
(a histogram's bucket counts, a span's fields, the current span). Because telemetry is
fail-open, an upgrade that renamed one of them would lose metrics or spans silently;
so each library's internals sit behind one module here (:mod:`.prometheus`,
:mod:`.opentelemetry`) that names them, states the versions it was checked against,
and offers ``verify()``: it exercises every relied-on internal against the library's
public behaviour and raises :class:`IncompatibleLibrary` when one changed. The test
suite calls it (``tests/telemetry/test_adapters.py``), so an upgrade fails loudly there.

The rule: no other module of telemetry, its benches or its tests names a private of these
libraries (but the adapters' own test, to simulate an upgrade); it asks the adapter.
Adapters import nothing of telemetry beyond this package, so every layer may use them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata


class IncompatibleLibrary(RuntimeError):
    """An internal an adapter relies on is missing or behaves differently: the installed
    version of the library needs the adapter updated before telemetry can use it."""


@contextmanager
def checking(distribution: str, checked_version: str, what: str) -> Iterator[None]:
    """Runs one check of ``verify()``: any failure inside (a missing attribute, a changed
    signature, an :func:`expect` not met) becomes :class:`IncompatibleLibrary` naming the
    installed version of ``distribution``, the version the adapter was checked with and
    ``what`` was being checked."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every failure here means the same thing
        installed = metadata.version(distribution)
        detail = str(exc) if isinstance(exc, IncompatibleLibrary) else repr(exc)
        raise IncompatibleLibrary(
            f"{distribution} {installed} (adapter checked with {checked_version}): {what}: {detail}") from exc


def expect(condition: bool, message: str) -> None:
    """Inside :func:`checking`: the library no longer behaves as relied on unless ``condition``."""
    if not condition:
        raise IncompatibleLibrary(message)
