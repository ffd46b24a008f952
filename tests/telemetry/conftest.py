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
