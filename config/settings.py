"""Django settings, read from the environment (12-factor).

Embedded defaults need no server: SQLite files and a file-based Celery broker under
``var/``. PostgreSQL, Redis or RabbitMQ are selected by URL.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# ---------------------------------------------------------------------------- general
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me-" + "x" * 24)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
RELEASE_VERSION = env("RELEASE_VERSION", default="0.1.0")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------- apps
DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "drf_spectacular",
]
LOCAL_APPS = [
    "telemetry",
    "plugins",
    "apps_builder",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "telemetry.http.middleware.TelemetryMiddleware",
    # NUL or lone surrogates in a path or query string are a 400 before any view runs.
    "apps_builder.validation.RejectMalformedParametersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------- databases
# ``default`` holds the platform; ``telemetry`` holds what the telemetry app stores, on
# its own connection so its writes never contend with the platform's transactions.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'platform.sqlite3'}"),
    "telemetry": env.db_url(
        "TELEMETRY_DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'telemetry.sqlite3'}"
    ),
}
for _alias, _db in DATABASES.items():
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web server, worker and beat read while one of them writes.
        _db.setdefault("OPTIONS", {}).setdefault(
            "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        )
        _db["OPTIONS"].setdefault("timeout", 20)
        # Writers take the write lock when their transaction begins: a read lock upgraded
        # later fails at once with "database is locked", whatever the timeout.
        _db["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
        _db.setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test_{_alias}.sqlite3")
    elif _db["ENGINE"] == "django.db.backends.postgresql":
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
        if _alias == "telemetry":
            # Telemetry's store must never hold a thread long: a dead or black-holed
            # server fails the connection attempt after this many seconds.
            _db.setdefault("OPTIONS", {}).setdefault(
                "connect_timeout", env.int("TELEMETRY_DATABASE_CONNECT_TIMEOUT", default=2)
            )
        if env.bool("DATABASE_POOL", default=False):
            _db["CONN_MAX_AGE"] = 0
            _db.setdefault("OPTIONS", {})["pool"] = {
                "min_size": 1,
                "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
                "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
            }
# TEST_DB_SUFFIX lets several test runs share one PostgreSQL server without colliding.
_test_suffix = env("TEST_DB_SUFFIX", default="")
if _test_suffix:
    for _alias, _db in DATABASES.items():
        _test = _db.setdefault("TEST", {})
        if _db["ENGINE"] == "django.db.backends.sqlite3":
            _test["NAME"] = str(VAR_DIR / f"test_{_alias}_{_test_suffix}.sqlite3")
        else:
            _test["NAME"] = f"test_{_db['NAME']}_{_test_suffix}"
DATABASE_ROUTERS = ["telemetry.core.routers.TelemetryRouter"]

# ---------------------------------------------------------------------------- cache
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# ---------------------------------------------------------------------------- auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"

# ---------------------------------------------------------------------------- static
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve the apps' static files (admin) from their directories: no collectstatic step.
WHITENOISE_USE_FINDERS = True

# ---------------------------------------------------------------------------- REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # `Authorization: Token <key>` against hashed keys (apps_builder.models.ApiToken).
        "apps_builder.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Request bodies are checked once here (size, depth, NUL, lone surrogates, non-finite
    # numbers) before any serializer or the database sees them.
    "DEFAULT_PARSER_CLASSES": [
        "apps_builder.validation.CheckedJSONParser",
        "apps_builder.validation.CheckedFormParser",
        "apps_builder.validation.CheckedMultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps_builder.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "telemetry.http.throttling.AnonRateThrottle",
        "telemetry.http.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("THROTTLE_ANON", default="600/min"),
        "user": env("THROTTLE_USER", default="6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Low-code platform API",
    "VERSION": RELEASE_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
}

# ---------------------------------------------------------------------------- Celery
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}"
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery" / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"  # messages written atomically
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
if CELERY_RESULT_BACKEND.startswith("file://"):
    (VAR_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULER = "telemetry.tasks.beat:TelemetryScheduler"
# Telemetry adds its periodic work (reports, retention, samplers, release comparison) to
# this app's beat schedule itself (telemetry.tasks.schedule): nothing to copy here.

# ---------------------------------------------------------------------------- platform
# Datasource plugins: run timeout and the connection cache.
PLUGINS = {
    "RUN_TIMEOUT_SECONDS": env.float("PLUGIN_RUN_TIMEOUT", default=10.0),
    "CONNECTION_CACHE_TTL_SECONDS": env.float("PLUGIN_CONNECTION_TTL", default=600.0),
    "CONNECTION_CACHE_IDLE_SECONDS": env.float("PLUGIN_CONNECTION_IDLE", default=120.0),
    "CONNECTION_CACHE_MAX_SIZE": env.int("PLUGIN_CONNECTION_CACHE_SIZE", default=64),
    # Egress of tenants' data sources (docs/platform.md, "Data source egress"): the internal targets
    # they may reach, where this web server listens (refused like the platform's database),
    # and the one directory SQLite sources may read.
    "EGRESS_ALLOWLIST": env.list("PLUGIN_EGRESS_ALLOWLIST", default=[]),
    "EGRESS_PLATFORM_ADDRESSES": env.list(
        "PLUGIN_EGRESS_PLATFORM_ADDRESSES",
        default=[env("GUNICORN_BIND", default=f"127.0.0.1:{env('PORT', default='8000')}")],
    ),
    "SQLITE_DIRECTORY": env("PLUGIN_SQLITE_DIRECTORY", default=str(VAR_DIR / "datasources")),
}
# `make demo` sets DEMO_REST_PORT; then exactly the demo's sample sources are allowlisted:
# the REST endpoint demo_traffic serves on that port and, on PostgreSQL, the sample database
# seed_demo creates beside the platform's (never the platform's own database).
DEMO_REST_PORT = env.int("DEMO_REST_PORT", default=0)
DEMO_SAMPLE_DATABASE = env("DEMO_SAMPLE_DATABASE", default="tooljet_demo_sample")
if DEMO_REST_PORT:
    PLUGINS["EGRESS_ALLOWLIST"].append(f"127.0.0.1:{DEMO_REST_PORT}")
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        PLUGINS["EGRESS_ALLOWLIST"].append(
            f"{DATABASES['default'].get('HOST') or 'localhost'}:{DATABASES['default'].get('PORT') or 5432}"
            f"/{DEMO_SAMPLE_DATABASE}"
        )

# ---------------------------------------------------------------------------- telemetry
TELEMETRY = {
    # The seed inventory's prefix (the library's default is "django"), and every optional
    # metric domain exported from the start: the platform drives them all.
    "NAMESPACE": "tooljet",
    "METRIC_DOMAINS": ["plugins", "datasources", "apps", "benchmarks", "storage"],
    "USER_ORGANIZATION_RESOLVER": "apps_builder.telemetry_hooks.user_organizations",
    "USAGE_ORGANIZATION_RESOLVER": "apps_builder.telemetry_hooks.administered_organizations",
    "ORGANIZATION_NAME_RESOLVER": "apps_builder.telemetry_hooks.organization_names",
    "STORAGE_USAGE_PROVIDER": "apps_builder.telemetry_hooks.storage_usage",
    "METRICS_TOKEN": env("TELEMETRY_METRICS_TOKEN", default=""),
    "METRICS_ALLOWED_IPS": env.list("TELEMETRY_METRICS_ALLOWED_IPS", default=[]),
    "TRACE_SAMPLE_RATE": env.float("TELEMETRY_TRACE_SAMPLE_RATE", default=0.1),
    # `make demo` lowers it so the planted seq scan (~100 ms on a million rows) is "slow".
    "SLOW_QUERY_MS": env.float("TELEMETRY_SLOW_QUERY_MS", default=200.0),
}

# ---------------------------------------------------------------------------- logging
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # JSON lines with trace_id/span_id (LOG_FORMAT=plain for a terminal); warnings and
    # errors are also kept with their trace in the telemetry store.
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "telemetry.tracing.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": env("LOG_FORMAT", default="json")},
        "telemetry_store": {"class": "telemetry.tracing.logs.TraceStoreHandler"},
    },
    "root": {"handlers": ["console", "telemetry_store"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}, "django.request": {"level": "ERROR"}},
}
