"""Gunicorn settings of the web process (`gunicorn -c platform/gunicorn.conf.py`).

Everything comes from the environment, with defaults for one small machine. Loaded by
path, never imported: ``platform/`` is not a Python package.
"""

import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT') or '8000'}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker keep serving while another request waits on a slow datasource.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
# Longer than the plugins' run timeout (PLUGIN_RUN_TIMEOUT, 10 s), so a hung datasource
# ends in the plugin's own error response rather than a killed worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# Shorter than honcho's 5 s grace before SIGKILL, so Ctrl-C ends workers cleanly.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "4"))
keepalive = 5
# Access log off by default (the telemetry middleware counts requests); "-" is stdout.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "lowcode-web"
# Gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which a second instance (tests beside a running demo) would take over; opt in by path.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


# ---------------------------------------------------------------------------- telemetry hooks
# prometheus-client multiprocess mode: every worker writes its own files under
# PROMETHEUS_MULTIPROC_DIR (set here, before the app is imported, also with --preload);
# a worker flushes buffered telemetry as it exits and the master folds its files into
# the archive, so /metrics counts every request and scrape time stays flat.
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from telemetry.http.gunicorn import child_exit, configure_multiprocess, worker_exit  # noqa: E402,F401

configure_multiprocess()
