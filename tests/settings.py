"""The settings the test suite runs with: the platform's, plus the test-only apps."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.advise_app"]
