"""The Prometheus text format (0.0.4) of one process's registry, byte for byte what
prometheus-client's ``generate_latest`` renders, in a fraction of its time.

``generate_latest`` builds a ``Sample`` (a dict of labels, a formatted bucket bound) for
every line and formats, sorts and escapes every label of it, at every scrape; the demo's
scrape is thousands of histogram lines that way. Here each series' line heads (name and
labels up to the value) are built once and kept, so a scrape reads the values, adds up the
buckets and formats the numbers. Labelled counters, gauges and histograms take that path;
any other collector (prometheus-client's process and platform collectors, a host's own) is
rendered by ``generate_latest`` itself, in the registry's order. With ``*_created``
samples on, or target info set, the whole registry goes to ``generate_latest``.
"""

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from telemetry.adapters import prometheus

#: Sample-name suffixes of one series' lines, by metric type (a histogram's buckets first).
SUFFIXES = {Counter: ("_total",), Gauge: ("",), Histogram: ("_count", "_sum")}


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _head(name: str, pairs: list[tuple[str, str]]) -> str:
    """``name{labels} `` as ``generate_latest`` writes it: labels sorted by name, escaped."""
    if not pairs:
        return f"{escape_metric_name(name)} "
    labels = ",".join(f'{escape_label_name(key)}="{_escape_value(value)}"' for key, value in sorted(pairs))
    return f"{escape_metric_name(name)}{{{labels}}} "


class MetricText:
    """One labelled metric's header and its series' line heads, kept from scrape to scrape."""

    __slots__ = ("metric", "kind", "name", "header", "bound_labels", "heads")

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self.kind = type(metric)
        described = next(iter(metric.describe()))
        self.name = described.name
        named = described.name + "_total" if self.kind is Counter else described.name
        documentation = described.documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.header = (f"# HELP {escape_metric_name(named)} {documentation}\n"
                       f"# TYPE {escape_metric_name(named)} {described.type}\n")
        self.bound_labels = ([floatToGoString(bound) for bound in prometheus.upper_bounds(metric)]
                             if isinstance(metric, Histogram) else [])
        #: Label values -> the heads of the series' lines, in render order.
        self.heads: dict[Sequence[str], tuple[str, ...]] = {}

    def _series_heads(self, label_values: Sequence[str]) -> tuple[str, ...]:
        name = self.name
        pairs = list(zip(prometheus.label_names(self.metric), label_values, strict=True))
        buckets = [_head(f"{name}_bucket", [*pairs, ("le", bound)]) for bound in self.bound_labels]
        return (*buckets, *(_head(name + suffix, pairs) for suffix in SUFFIXES[self.kind]))

    def render(self, out: list[str]) -> None:
        out.append(self.header)
        children = prometheus.children(self.metric)
        heads = self.heads
        if len(heads) > len(children):  # children removed since: forget theirs
            heads.clear()
        if self.kind is Histogram:
            for label_values, child in children:
                series = heads.get(label_values) or heads.setdefault(label_values, self._series_heads(label_values))
                counts, total = prometheus.bucket_counts(child)
                cumulative = 0.0
                for head, count in zip(series, counts, strict=False):
                    cumulative += count
                    out.append(f"{head}{floatToGoString(cumulative)}\n")
                out.append(f"{series[-2]}{floatToGoString(cumulative)}\n{series[-1]}{floatToGoString(total)}\n")
        else:
            for label_values, child in children:
                series = heads.get(label_values) or heads.setdefault(label_values, self._series_heads(label_values))
                out.append(f"{series[0]}{floatToGoString(prometheus.child_value(child))}\n")


_texts: weakref.WeakKeyDictionary[Any, MetricText] = weakref.WeakKeyDictionary()
_texts_lock = threading.Lock()


def _text_of(collector: Any) -> MetricText | None:
    """The kept text of a labelled counter, gauge or histogram; None for any other collector."""
    if type(collector) not in SUFFIXES or not prometheus.label_names(collector):
        return None
    if type(collector) is Histogram and prometheus.upper_bounds(collector)[0] < 0:
        return None  # rendered without ``_sum``
    text = _texts.get(collector)
    if text is None:
        with _texts_lock:
            text = _texts.setdefault(collector, MetricText(collector))
    return text


def render(registry: CollectorRegistry) -> bytes:
    """``generate_latest(registry)``, byte for byte."""
    collectors = prometheus.collectors(registry)
    if collectors is None or prometheus.created_samples_rendered():
        return generate_latest(registry)
    out: list[str] = []
    for collector in collectors:
        text = _text_of(collector)
        if text is None:
            out.append(generate_latest(collector).decode())
        else:
            with _texts_lock:  # one scrape at a time renders a metric's kept heads
                text.render(out)
    return "".join(out).encode()
