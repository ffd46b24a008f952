import pytest

from telemetry import testing


@pytest.fixture
def samples():
    return testing.Samples()


@pytest.fixture(autouse=True)
def fresh_telemetry():
    """Each test starts without the tables, caches and rate limits (a finding is kept once
    a minute per code and fingerprint) an earlier test left behind in this process."""
    testing.reset()
