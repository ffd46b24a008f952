"""A stranger's fresh project with telemetry added: Django's contrib apps and telemetry
only (no platform app, no plugin), an empty ``TELEMETRY`` dict, and one view of its own
that reads the database (``fresh_host_urls``). The databases and broker are the platform's (from the
environment), so the subprocess reaches the test databases."""

from config.settings import *  # noqa: F403
from config.settings import DJANGO_APPS

INSTALLED_APPS = [*DJANGO_APPS, "telemetry"]
MIDDLEWARE = [
    "telemetry.http.middleware.TelemetryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TELEMETRY: dict = {}
REST_FRAMEWORK: dict = {}
ROOT_URLCONF = "tests.telemetry.fresh_host_urls"

