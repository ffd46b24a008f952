"""``/metrics`` of one process's registry, byte for byte what prometheus-client renders
(its ``generate_latest`` for the Prometheus text format 0.0.4, ``openmetrics.generate_latest``
for OpenMetrics 1.0, which Prometheus asks for first), in a fraction of its time.

prometheus-client builds a ``Sample`` (a dict of labels, a formatted bucket bound) for
every line and formats, sorts and escapes every label of it, at every scrape; the demo's
scrape is thousands of histogram lines that way. Here each series' line heads (name and
labels up to the value) are built once and kept, so a scrape reads the values, adds up the
buckets and formats the numbers. Labelled counters, gauges and histograms with
Prometheus-classic names take that path; any other collector (prometheus-client's process
and platform collectors, a host's own) is rendered by prometheus-client itself, in the
registry's order. With ``*_created`` samples on, or target info set, the whole registry is.
"""

import functools
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from telemetry.adapters import prometheus

#: Sample-name suffixes of one series' lines, by metric type (a histogram's buckets first).
SUFFIXES = {Counter: ("_total",), Gauge: ("",), Histogram: ("_count", "_sum")}
#: Names every escaping scheme of both formats renders as they are (so a kept head serves
#: any of them; OpenMetrics with underscores escaping rewrites a colon).
CLASSIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
EOF_LINE = "# EOF\n"


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _head(name: str, pairs: list[tuple[str, str]]) -> str:
    """``name{labels} ``: labels sorted by name, values escaped, as both formats write them."""
    if not pairs:
        return f"{name} "
    labels = ",".join(f'{key}="{_escape_value(value)}"' for key, value in sorted(pairs))
    return f"{name}{{{labels}}} "


def _exemplar(exemplar: Exemplar | None) -> str:
    """An OpenMetrics exemplar as ``openmetrics.generate_latest`` appends it to its sample."""
    if exemplar is None:
        return ""
    labels = ",".join(f'{key}="{_escape_value(value)}"' for key, value in sorted(exemplar.labels.items()))
    timestamp = "" if exemplar.timestamp is None else f" {exemplar.timestamp}"
    return f" # {{{labels}}} {floatToGoString(exemplar.value)}{timestamp}"


class MetricText:
    """One labelled metric's headers and its series' line heads, kept from scrape to scrape."""

    __slots__ = ("metric", "kind", "name", "header", "openmetrics_header", "bound_labels", "heads")

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self.kind = type(metric)
        described = next(iter(metric.describe()))
        self.name = name = described.name
        # The text format names a counter's family after its sample; OpenMetrics does not.
        named = name + "_total" if self.kind is Counter else name
        documentation = described.documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.header = f"# HELP {named} {documentation}\n# TYPE {named} {described.type}\n"
        quoted = documentation.replace('"', r"\"")
        self.openmetrics_header = f"# HELP {name} {quoted}\n# TYPE {name} {described.type}\n"
        self.bound_labels = ([floatToGoString(bound) for bound in prometheus.upper_bounds(metric)]
                             if isinstance(metric, Histogram) else [])
        #: Label values -> the heads of the series' lines, in render order.
        self.heads: dict[Sequence[str], tuple[str, ...]] = {}

    def _series_heads(self, label_values: Sequence[str]) -> tuple[str, ...]:
        pairs = list(zip(prometheus.label_names(self.metric), label_values, strict=True))
        buckets = [_head(f"{self.name}_bucket", [*pairs, ("le", bound)]) for bound in self.bound_labels]
        return (*buckets, *(_head(self.name + suffix, pairs) for suffix in SUFFIXES[self.kind]))

    def render(self, out: list[str], openmetrics: bool) -> None:
        out.append(self.openmetrics_header if openmetrics else self.header)
        children = prometheus.children(self.metric)
        heads = self.heads
        if len(heads) > len(children):  # children removed since: forget theirs
            heads.clear()
        for label_values, child in children:
            series = heads.get(label_values) or heads.setdefault(label_values, self._series_heads(label_values))
            shown = prometheus.exemplars(child) if openmetrics and self.kind is not Gauge else None
            if self.kind is Histogram:
                counts, total = prometheus.bucket_counts(child)
                cumulative = 0.0
                for index, count in enumerate(counts):
                    cumulative += count
                    exemplar = _exemplar(shown[index]) if shown else ""
                    out.append(f"{series[index]}{floatToGoString(cumulative)}{exemplar}\n")
                out.append(f"{series[-2]}{floatToGoString(cumulative)}\n{series[-1]}{floatToGoString(total)}\n")
            else:
                exemplar = _exemplar(shown[0]) if shown else ""
                out.append(f"{series[0]}{floatToGoString(prometheus.child_value(child))}{exemplar}\n")


_texts: weakref.WeakKeyDictionary[Any, MetricText] = weakref.WeakKeyDictionary()
_texts_lock = threading.Lock()


def _text_of(collector: Any) -> MetricText | None:
    """The kept text of a labelled counter, gauge or histogram with classic names; None for
    any other collector."""
    if type(collector) not in SUFFIXES:
        return None
    text = _texts.get(collector)
    if text is None:
        described = next(iter(collector.describe()))
        names = [described.name, *prometheus.label_names(collector)]
        if len(names) == 1 or described.unit or not all(CLASSIC_NAME.fullmatch(name) for name in names):
            return None
        if isinstance(collector, Histogram) and prometheus.upper_bounds(collector)[0] < 0:
            return None  # rendered without ``_sum``
        with _texts_lock:
            text = _texts.setdefault(collector, MetricText(collector))
    return text


def renders(encoder: Callable[..., bytes]) -> bool:
    """Whether :func:`render` writes what ``encoder`` (from ``choose_encoder``) would."""
    if encoder is generate_latest:
        return True
    return (isinstance(encoder, functools.partial) and encoder.func is generate_openmetrics
            and str(encoder.keywords.get("version", "1.0.0")).startswith("1."))


def render(registry: CollectorRegistry, encoder: Callable[..., bytes]) -> bytes:
    """``encoder(registry)``, byte for byte, for an encoder :func:`renders`."""
    collectors = prometheus.collectors(registry)
    if collectors is None or prometheus.created_samples_rendered():
        return encoder(registry)
    openmetrics = encoder is not generate_latest
    out: list[str] = []
    for collector in collectors:
        text = _text_of(collector)
        if text is None:
            rendered = encoder(collector).decode()
            out.append(rendered.removesuffix(EOF_LINE) if openmetrics else rendered)
        else:
            with _texts_lock:  # one scrape at a time renders a metric's kept heads
                text.render(out, openmetrics)
    if openmetrics:
        out.append(EOF_LINE)
    return "".join(out).encode()

