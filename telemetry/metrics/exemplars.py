"""Exemplars under prometheus-client's multiprocess mode, which keeps none.

Each process keeps the latest exemplar (a kept trace's id) per histogram bucket it
observed, at most :data:`MAX_PER_PROCESS`, and after each drain that changed them writes
them all to ``exemplars_<pid>.json`` in the multiprocess directory: a new file renamed over
the old one, so a reader (or a crash) only ever sees a complete file. A scrape in
OpenMetrics merges every file, the latest exemplar per bucket winning, into the samples of
the multiprocess collector. When gunicorn reaps a worker its file is folded into
``exemplars_archive.json`` (bounded the same way) by :func:`merge_dead_process`.
"""

import glob
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

#: Buckets whose exemplar one process (and the archive) keeps; the oldest go first. Each
#: is ~150 bytes of JSON, written once per drain that changed one.
MAX_PER_PROCESS = 2000
ARCHIVE = "archive"

#: (metric name, ((label, value), ... sorted, with "le")) -> (exemplar labels, value, time)
Key = tuple[str, tuple[tuple[str, str], ...]]
Entry = tuple[dict[str, str], float, float]


def file_path(directory: str, pid: int | str) -> str:
    return os.path.join(directory, f"exemplars_{pid}.json")


class ProcessExemplars:
    """This process's latest exemplar per bucket, written to its file when changed."""

    __slots__ = ("entries", "changed")

    def __init__(self) -> None:
        self.entries: OrderedDict[Key, Entry] = OrderedDict()
        self.changed = False

    def record(self, name: str, label_names: Iterable[str], label_values: Iterable[str], upper_bound: float,
               labels: dict[str, str], value: float) -> None:
        pairs = (*zip(label_names, label_values, strict=True), ("le", floatToGoString(upper_bound)))
        key = (name, tuple(sorted(pairs)))
        self.entries.pop(key, None)
        self.entries[key] = (labels, value, time.time())
        if len(self.entries) > MAX_PER_PROCESS:
            self.entries.popitem(last=False)
        self.changed = True

    def write(self, directory: str) -> None:
        """Replaces this process's file with the current exemplars, if any changed."""
        if not self.changed:
            return
        self.changed = False
        _write(file_path(directory, os.getpid()), self.entries)

    def clear(self) -> None:
        self.entries.clear()
        self.changed = False


def _write(path: str, entries: "OrderedDict[Key, Entry]") -> None:
    rows = [[name, pairs, labels, value, timestamp] for (name, pairs), (labels, value, timestamp) in entries.items()]
    handle, temporary = tempfile.mkstemp(prefix=".exemplars-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(orjson.dumps(rows))
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _read(path: str) -> Iterator[tuple[Key, Entry]]:
    """A file's exemplars; nothing for a file that is gone or unreadable."""
    try:
        with open(path, "rb") as file:
            rows = orjson.loads(file.read())
        for name, pairs, labels, value, timestamp in rows:
            yield (name, tuple((str(label), str(text)) for label, text in pairs)), (labels, float(value),
                                                                                    float(timestamp))
    except (OSError, ValueError, TypeError):
        return


def merged(directory: str) -> dict[Key, Entry]:
    """The latest exemplar per bucket over every process's file and the archive."""
    latest: dict[Key, Entry] = {}
    for path in glob.glob(os.path.join(directory, "exemplars_*.json")):
        for key, entry in _read(path):
            known = latest.get(key)
            if known is None or entry[2] > known[2]:
                latest[key] = entry
    return latest


def merge_dead_process(directory: str, pid: int | str) -> None:
    """Folds a dead process's exemplars into the archive file and removes its file (under
    the caller's exclusive lock of the directory). A failed write keeps the dead file."""
    dead = file_path(directory, pid)
    if not os.path.exists(dead):
        return
    archive = file_path(directory, ARCHIVE)
    entries = OrderedDict(sorted((*_read(archive), *_read(dead)), key=lambda item: item[1][2]))
    while len(entries) > MAX_PER_PROCESS:
        entries.popitem(last=False)
    try:
        _write(archive, entries)
    except OSError:
        return
    os.remove(dead)


def remove_all(directory: str) -> None:
    """Every exemplar file of the directory (a server start)."""
    for path in glob.glob(os.path.join(directory, "exemplars_*.json")):
        os.remove(path)


class WithExemplars(Collector):
    """A collector whose histogram bucket samples carry the merged exemplars."""

    def __init__(self, collector: Collector, directory: str) -> None:
        self.collector = collector
        self.directory = directory

    def collect(self) -> Iterable[Any]:
        exemplars = merged(self.directory)
        for family in self.collector.collect():
            if family.type == "histogram" and exemplars:
                family.samples = [_with_exemplar(sample, exemplars) for sample in family.samples]
            yield family


def _with_exemplar(sample: Any, exemplars: dict[Key, Entry]) -> Any:
    if not sample.name.endswith("_bucket"):
        return sample
    entry = exemplars.get((sample.name[: -len("_bucket")], tuple(sorted(sample.labels.items()))))
    if entry is None:
        return sample
    labels, value, timestamp = entry
    return sample._replace(exemplar=Exemplar(labels, value, timestamp))


#: This process's exemplars (multiprocess mode only).
process_exemplars = ProcessExemplars()
