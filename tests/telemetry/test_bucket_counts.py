"""A drain's bucket counts (``telemetry.core.recorder.bucket_counts``) put each value where
observing it would: Prometheus histograms read the same buckets, and the latency
histograms of the statistics tables (an overflow bucket past the last finite bound) the
same counts, with few values per series and with many."""

import bisect
import math
import random
import re

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from telemetry.adapters import prometheus as prometheus_adapter
from telemetry.core.recorder import bucket_counts
from telemetry.models import QueryStat
from telemetry.queries import stats

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: A value equal to a bound (first, inner, last finite), below the first, above the last
#: finite bound, and +Inf.
EDGES = [0.005, 0.1, 10.0, 0.0, -1.0, 10.5, math.inf]


def _exposition(registry):
    return "\n".join(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)


@pytest.mark.parametrize("spread", [0, 3, 200], ids=["edges-only", "few-per-bound", "many-per-bound"])
def test_added_bucket_counts_expose_what_observing_each_value_does(spread):
    generator = random.Random(spread)
    values = EDGES + [generator.choice([*BOUNDS, generator.expovariate(5)]) for _ in range(spread)]
    observed_registry, added_registry = CollectorRegistry(), CollectorRegistry()
    observed, added = (Histogram("drained_seconds", "Durations.", ["route"], buckets=BOUNDS, registry=registry)
                       for registry in (observed_registry, added_registry))
    for value in values:
        observed.labels("/apps/").observe(value)
    bounds = prometheus_adapter.upper_bounds(added)

    counts = bucket_counts(bounds, values, len(bounds))
    prometheus_adapter.add_observations(added.labels("/apps/"), counts, sum(values))

    assert _exposition(added_registry) == _exposition(observed_registry)
    assert re.search(r'drained_seconds_bucket\{le="\+Inf",route="/apps/"\} (\S+)', _exposition(added_registry))[1] \
        == f"{len(values)}.0"


@pytest.mark.parametrize("count", [1, 5, 40])
def test_an_overflow_bucket_takes_the_values_past_the_last_finite_bound(count):
    """The statistics tables' latency buckets: upper bounds in milliseconds without +Inf,
    one more bucket for everything above the last."""
    bounds = (1, 2, 5, 10, 20, 50, 100)
    values = ([0.5, 1.0, 2.0, 100.0, 100.5, 1e9] * count)[:max(count, 6)]
    expected = [0] * (len(bounds) + 1)
    for value in values:
        expected[bisect.bisect_left(bounds, value)] += 1

    counts = bucket_counts(bounds, values, len(bounds) + 1)

    assert counts == expected
    assert counts[0] == values.count(0.5) + values.count(1.0)  # at the bound: in its bucket
    assert counts[-1] == values.count(100.5) + values.count(1e9)  # past the last bound: the overflow bucket
    assert sum(counts) == len(values)
    assert bucket_counts(bounds, [], len(bounds) + 1) == [0] * (len(bounds) + 1)


def test_query_statistics_bucket_durations_as_their_stored_bounds_say():
    """The statistics put each duration (ms) in the column ``QueryStat.BUCKETS_MS`` gives
    it, a duration at a bound included, past the last bound in the overflow column."""
    bounds = QueryStat.BUCKETS_MS
    values = [value + offset for value in (0.0, *bounds, 60_000.0) for offset in (-0.001, 0.0, 0.001)]
    expected = [0] * len(stats.BUCKET_FIELDS)
    for value in values:
        expected[bisect.bisect_left(bounds, value)] += 1

    assert bucket_counts(stats.BUCKET_BOUNDS_MS, values, len(stats.BUCKET_FIELDS)) == expected
    # At or below 1 ms: the three around 0, 0.999 and 1.0; past 30 s: 30,000.001 and the three around 60 s.
    assert (expected[0], expected[-1]) == (5, 4)
