import pytest

from telemetry import testing


@pytest.fixture
def samples():
    return testing.Samples()
