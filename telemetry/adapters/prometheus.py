"""prometheus-client internals telemetry relies on, checked with prometheus-client 0.26.0.

Histograms (the flusher applies one drain's observations per series at once, instead of
one ``observe`` per value):

- ``Histogram._upper_bounds``: the bucket bounds, +Inf last, index for index with a
  child's ``_buckets``;
- a child's ``_sum`` and ``_buckets[i]`` value objects and their ``inc(amount)``: buckets
  hold non-cumulative counts (``observe`` increments the first bucket whose bound is >=
  the value; collection accumulates), so adding per-bucket counts and their total
  equals observing each value;
- ``_buckets[i].set_exemplar(Exemplar)``: the exemplar shown on bucket ``i``, what
  ``observe(value, exemplar)`` sets (a no-op in multiprocess mode, there as here);

Counters (the middleware's crash-safe counts, on the request thread):

- a counter child's ``_value.inc(amount)``: what its ``inc(amount)`` does for a labelled
  child and an amount >= 0, without the checks of those (three Python calls);
- a metric's ``_labelnames`` and a registry's ``_names_to_collectors`` (the inventory
  test's view of what is registered).

Rendering (:mod:`telemetry.http.exposition` writes the text format from the values):

- a registry's ``_collector_to_names`` (its collectors, in the order ``collect()`` reads
  them), ``_target_info`` and ``_lock``; a labelled metric's ``_metrics`` (its children by
  label values, in creation order) and ``_lock``;
- a counter or gauge child's ``_value.get()`` (a gauge given ``set_function`` replaces its
  ``_child_samples`` instead), a histogram child's ``_buckets[i].get()`` and ``_sum.get()``;
  the exemplars OpenMetrics shows: a counter child's ``_value.get_exemplar()``, a histogram
  child's ``_buckets[i].get_exemplar()``;
- ``prometheus_client.metrics._use_created``: whether ``*_created`` samples are rendered.

Multiprocess mode (:mod:`telemetry.metrics.multiprocess` folds a dead worker's files into
one archive file per type):

- ``prometheus_client.mmap_dict.MmapedDict``: ``read_all_values_from_file(path)`` yielding
  ``(key, value, timestamp, position)``, and ``read_value``, ``write_value``, ``close``;
- the directory's layout: a process writes ``<type>_<pid>.db`` (counter, histogram) and
  ``gauge_<mode>_<pid>.db``; ``MultiProcessCollector`` reads every ``*.db`` file, takes
  the type from the name's first ``_``-separated part and sums counter and histogram
  values across files, so ``<type>_archive.db`` is read as one more process.

:func:`verify` checks all of it against the installed version.
"""

import bisect
import glob
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    multiprocess,
)
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from telemetry.adapters import checking, expect

CHECKED_VERSION = "0.26.0"

# ---------------------------------------------------------------------------- histograms


def created_series(enabled: bool) -> None:
    """Turns prometheus-client's ``*_created`` samples on or off, process-wide (a
    module switch of prometheus-client; multiprocess output never has them)."""
    if enabled:
        enable_created_metrics()
    else:
        disable_created_metrics()


def upper_bounds(histogram: Histogram) -> list[float]:
    """The bucket bounds of ``histogram`` (+Inf last): bucket ``i`` of
    :func:`add_observations` holds the values whose ``bisect_left`` index is ``i``."""
    return list(histogram._upper_bounds)


def add_observations(child: Histogram, bucket_counts: Sequence[int], total: float) -> None:
    """Adds to a histogram child what observing the values would: ``bucket_counts[i]``
    values in bucket ``i`` summing to ``total``, one increment per bucket."""
    child._sum.inc(total)
    buckets = child._buckets
    for index, count in enumerate(bucket_counts):
        if count:
            buckets[index].inc(count)


def set_bucket_exemplar(child: Histogram, index: int, labels: dict[str, str], value: float) -> None:
    """Shows ``labels`` (a trace id) as the exemplar of bucket ``index``, as
    ``observe(value, labels)`` would."""
    child._buckets[index].set_exemplar(Exemplar(labels, value, time.time()))


def increment(child: Counter) -> Callable[[float], None]:
    """``child.inc`` for a child of a labelled counter, minus its checks: to be called with
    an amount >= 0 only. Takes the value's lock (and in multiprocess mode writes the
    process's file) as ``inc`` does."""
    return child._value.inc


class Increments(dict):
    """key -> the :func:`increment` of each counter child ``resolve(key)`` returns, resolved
    on the key's first use: for hot paths counting into labelled counters, where
    ``labels()`` costs more than the increment. A hit is one dict lookup. Bounded as the
    keys are: callers key by bounded label values."""

    __slots__ = ("resolve",)

    def __init__(self, resolve: Callable[[Any], Sequence[Counter]]) -> None:
        super().__init__()
        self.resolve = resolve

    def __missing__(self, key: Any) -> tuple[Callable[[float], None], ...]:
        increments = self[key] = tuple(map(increment, self.resolve(key)))
        return increments


def label_names(metric: Counter | Gauge | Histogram) -> tuple[str, ...]:
    """The label keys a metric was declared with."""
    return tuple(metric._labelnames)


def is_registered(registry: CollectorRegistry, metric: Counter | Histogram) -> bool:
    """Whether ``registry`` holds ``metric`` itself under its name."""
    # describe() returns a list; prometheus-client types it as an Iterable.
    return registry._names_to_collectors.get(metric.describe()[0].name) is metric  # type: ignore[index]


# ---------------------------------------------------------------------------- rendering


def collectors(registry: CollectorRegistry) -> list[Collector] | None:
    """``registry``'s collectors in the order its ``collect()`` reads them; None when it
    has target info (a ``target_info`` family rendered before them)."""
    with registry._lock:
        if registry._target_info:
            return None
        return list(registry._collector_to_names)


def children(metric: Counter | Gauge | Histogram) -> list[tuple[Sequence[str], Any]]:
    """A labelled metric's children with their label values, in the order it renders them."""
    with metric._lock:
        return list(metric._metrics.items())


def child_value(child: Counter | Gauge) -> float:
    """The value a counter or gauge child renders."""
    if "_child_samples" in vars(child):  # Gauge.set_function
        return next(iter(child._child_samples())).value
    return child._value.get()


def bucket_counts(child: Histogram) -> tuple[list[float], float]:
    """A histogram child's per-bucket (not cumulative) counts, index for index with
    :func:`upper_bounds`, and its sum."""
    return [bucket.get() for bucket in child._buckets], child._sum.get()


def exemplars(child: Counter | Histogram) -> list[Exemplar | None]:
    """The exemplar a counter child shows on its sample, or a histogram child on each bucket."""
    if isinstance(child, Histogram):
        return [bucket.get_exemplar() for bucket in child._buckets]
    return [child._value.get_exemplar()]


def created_samples_rendered() -> bool:
    """Whether metrics render ``*_created`` samples (see :func:`created_series`)."""
    return bool(prometheus_metrics._use_created)


# ---------------------------------------------------------------------------- multiprocess files


def process_file(directory: str, kind: str, pid: int | str) -> str:
    """The file process ``pid`` writes its ``kind`` ("counter", "histogram") values to; an
    archive file is one more such file, with a name in place of the pid."""
    return os.path.join(directory, f"{kind}_{pid}.db")


def gauge_files(directory: str, pid: int | str) -> list[str]:
    """The gauge files of process ``pid``, of every multiprocess mode."""
    return glob.glob(os.path.join(directory, f"gauge_*_{pid}.db"))


def value_files(directory: str) -> list[str]:
    """Every file the collector reads in ``directory``."""
    return glob.glob(os.path.join(directory, "*.db"))


def add_file_values(source: str, target: str) -> None:
    """Adds each value of the file ``source`` to the same series in ``target`` (created when
    missing). For counter and histogram files, whose values the collector sums."""
    archive = MmapedDict(target)
    try:
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(source):
            current, _ = archive.read_value(key)
            archive.write_value(key, current + value, 0.0)
    finally:
        archive.close()


# ---------------------------------------------------------------------------- verify


def verify() -> None:
    """Raises :class:`telemetry.adapters.IncompatibleLibrary` unless every internal named
    above exists and behaves as relied on. Makes throwaway metrics in no registry and
    files in a temporary directory: call it where ``PROMETHEUS_MULTIPROC_DIR`` is unset
    (tests), as in multiprocess mode even unregistered metrics write to the process's files."""
    _verify_histogram_path()
    _verify_counter_increment()
    _verify_metric_metadata()
    _verify_rendering_reads()
    _verify_multiprocess_files()


def _check(what):
    return checking("prometheus-client", CHECKED_VERSION, what)


def _samples(metric):
    """Name suffix, labels, value and exemplar (labels, value) of each sample but ``_created``."""
    family = metric.collect()[0]
    return [(sample.name[len(family.name):], sample.labels, sample.value,
             sample.exemplar and (sample.exemplar.labels, sample.exemplar.value))
            for sample in family.samples if not sample.name.endswith("_created")]


def _verify_histogram_path():
    values = [0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 50.0]  # on and between bounds, and past the last
    exemplar = {"trace_id": "0af7651916cd43dd8448eb211c80319c"}
    with _check("Histogram._upper_bounds"):
        added = Histogram("adapter_histogram", "Verify.", ["route"], buckets=(0.1, 1.0, 10.0), registry=None)
        bounds = upper_bounds(added)
        expect(bounds == [0.1, 1.0, 10.0, math.inf], f"bounds {bounds}, expected the buckets and +Inf")
    with _check("adding bucket counts through child._sum and child._buckets equals observing"):
        observed = Histogram("adapter_histogram", "Verify.", ["route"], buckets=(0.1, 1.0, 10.0), registry=None)
        counts = [0] * len(bounds)
        for value in values:
            counts[bisect.bisect_left(bounds, value)] += 1
            observed.labels("/r").observe(value, exemplar if value == 3.0 else None)
        child = added.labels("/r")
        add_observations(child, counts, sum(values))
        set_bucket_exemplar(child, bisect.bisect_left(bounds, 3.0), exemplar, 3.0)
        expect(_samples(added) == _samples(observed),
               f"added {_samples(added)} != observed {_samples(observed)}")


def _verify_counter_increment():
    with _check("a counter child's _value.inc equals its inc"):
        added = Counter("adapter_counted", "Verify.", ["route"], registry=None)
        counted = Counter("adapter_counted", "Verify.", ["route"], registry=None)
        for amount in (1, 3):
            increment(added.labels("/r"))(amount)
            counted.labels("/r").inc(amount)
        expect(_samples(added) == _samples(counted), f"added {_samples(added)} != counted {_samples(counted)}")


def _verify_metric_metadata():
    with _check("metric._labelnames and registry._names_to_collectors"):
        registry = CollectorRegistry()
        counter = Counter("adapter_checked", "Verify.", ["alias", "vendor"], registry=registry)
        expect(label_names(counter) == ("alias", "vendor"), f"label names {label_names(counter)}")
        expect(is_registered(registry, counter), "a registered counter is not found in its registry")
        expect(not is_registered(CollectorRegistry(), counter), "a counter is found in a registry it is not in")


def _verify_rendering_reads():
    with _check("registry._collector_to_names, metric._metrics and the children's values"):
        registry = CollectorRegistry()
        counter = Counter("adapter_rendered", "Verify.", ["alias"], registry=registry)
        gauge = Gauge("adapter_level", "Verify.", ["alias"], registry=registry)
        histogram = Histogram("adapter_latency", "Verify.", ["alias"], buckets=(0.1, 1.0), registry=registry)
        expect(collectors(registry) == [counter, gauge, histogram], f"collectors {collectors(registry)}")
        counter.labels("a").inc(2)
        gauge.labels("b").set(3)
        gauge.labels("c").set_function(lambda: 4.0)
        for value in (0.05, 0.5, 5.0):
            histogram.labels("d").observe(value)
        read = [(values, child_value(child)) for values, child in children(counter) + children(gauge)]
        expect(read == [(("a",), 2.0), (("b",), 3.0), (("c",), 4.0)], f"counter and gauge values {read}")
        counts = [(values, bucket_counts(child)) for values, child in children(histogram)]
        expect(counts == [(("d",), ([1.0, 1.0, 1.0], 5.55))], f"histogram values {counts}")
        counter.labels("a").inc(1, {"trace_id": "1"})
        histogram.labels("d").observe(0.7, {"trace_id": "2"})
        shown = [exemplar and exemplar.labels for exemplar in [*exemplars(counter.labels("a")),
                                                                *exemplars(histogram.labels("d"))]]
        expect(shown == [{"trace_id": "1"}, None, {"trace_id": "2"}, None], f"exemplars {shown}")
        expect(isinstance(prometheus_metrics._use_created, bool), "metrics._use_created is gone")


def _write(path, key, value):
    values = MmapedDict(path)
    try:
        values.write_value(key, value, 0.0)
    finally:
        values.close()


def _verify_multiprocess_files():
    with _check("MmapedDict and the multiprocess directory layout"), tempfile.TemporaryDirectory() as directory:
        key = mmap_key("adapter_checked", "adapter_checked_total", ("alias",), ("default",), "Verify.")
        archive = process_file(directory, "counter", "archive")
        for pid, value in ((101, 2.0), (102, 3.0), (103, 7.0)):
            _write(process_file(directory, "counter", pid), key, value)
        for dead in (101, 102):
            add_file_values(process_file(directory, "counter", dead), archive)
            os.remove(process_file(directory, "counter", dead))
        stored = list(MmapedDict.read_all_values_from_file(archive))
        expect(len(stored) == 1 and stored[0][:3] == (key, 5.0, 0.0),
               f"archive holds {stored}, expected one (key, 5.0, 0.0, position)")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        total = registry.get_sample_value("adapter_checked_total", {"alias": "default"})
        expect(total == 12.0, f"the collector reads {total} from the archive and a live file, expected 12.0")
        for mode in ("livesum", "max"):
            _write(os.path.join(directory, f"gauge_{mode}_101.db"), key, 1.0)
        expect(len(gauge_files(directory, 101)) == 2, f"gauge files of 101: {gauge_files(directory, 101)}")
        multiprocess.mark_process_dead(101, directory)
        expect([os.path.basename(path) for path in gauge_files(directory, 101)] == ["gauge_max_101.db"],
               "mark_process_dead no longer removes exactly the live gauges' files")
        expect(len(value_files(directory)) == 3, f"value files: {value_files(directory)}")
