"""prometheus-client multiprocess mode, with dead workers' files merged.

Each process writes its own ``<type>_<pid>.db`` files; a scrape reads them all, so
scrape time grows with every worker that ever lived. When gunicorn reaps a worker,
:func:`merge_dead_process` adds its counters and histograms into one archive file per
type and deletes its files, so scrape time stays flat over many restarts. A file lock
keeps a scrape from seeing a worker's values both merged and unmerged.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, multiprocess

from telemetry.adapters import prometheus
from telemetry.metrics import exemplars

ARCHIVE_PID = "archive"


def directory() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@contextmanager
def locked(path: str, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(path, ".merge.lock"), "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def collect_registry(with_exemplars: bool = False) -> CollectorRegistry:
    """A registry reading every process's files (under a shared lock while collecting),
    histogram buckets with the processes' exemplars when asked (OpenMetrics)."""
    registry = CollectorRegistry()
    path = directory()
    collector = multiprocess.MultiProcessCollector(None, path=path)
    registry.register(exemplars.WithExemplars(collector, path) if with_exemplars and path else collector)
    return registry


def merge_dead_process(pid: int | str, path: str | None = None) -> None:
    """Folds a dead process's counters and histograms into the archive files and removes
    its files; its live gauges are dropped (``mark_process_dead``)."""
    path = path or directory()
    if not path:
        return
    with locked(path, exclusive=True):
        for kind in ("counter", "histogram"):
            dead_file = prometheus.process_file(path, kind, pid)
            if not os.path.exists(dead_file):
                continue
            prometheus.add_file_values(dead_file, prometheus.process_file(path, kind, ARCHIVE_PID))
            os.remove(dead_file)
        multiprocess.mark_process_dead(pid, path)
        # Gauges in "all"/"max"/"min"/"mostrecent" modes of a dead process go too.
        for gauge_file in prometheus.gauge_files(path, pid):
            os.remove(gauge_file)
        exemplars.merge_dead_process(path, pid)


def prepare_directory(path: str) -> None:
    """Empties the directory at server start: values from a previous run must not leak in."""
    os.makedirs(path, exist_ok=True)
    for stale in prometheus.value_files(path):
        os.remove(stale)
    exemplars.remove_all(path)
