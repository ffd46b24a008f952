import pytest
from prometheus_client import REGISTRY

from telemetry import api


class Samples:
    """Reads samples after applying buffered telemetry events; ``delta`` against a baseline."""

    def value(self, name, labels=None):
        api.flush()
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    def snapshot(self, name, labels=None):
        before = self.value(name, labels)
        return lambda: self.value(name, labels) - before


@pytest.fixture
def samples():
    return Samples()


@pytest.fixture(autouse=True)
def fresh_finding_rate_limits():
    """Findings are kept once a minute per (code, fingerprint) and process: each test
    starts without the limits an earlier test left behind."""
    from telemetry.queries import stats as querystats

    querystats._last_finding.clear()
    yield
