"""Gunicorn hooks for prometheus-client multiprocess mode. One line in ``gunicorn.conf.py``::

    from telemetry.http.gunicorn import child_exit, on_starting, worker_exit

``on_starting`` sets ``PROMETHEUS_MULTIPROC_DIR`` in the master before any worker imports
the app. With ``--preload`` the master imports the app before that hook: call
``configure_multiprocess()`` at the top of the config file instead (it runs at config load).
"""

import os
from typing import Any


def configure_multiprocess(directory: str | None = None) -> str:
    """Sets ``PROMETHEUS_MULTIPROC_DIR`` (default ``$VAR_DIR/prometheus-multiproc``) unless
    the environment already does, and creates it. Returns the directory."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or directory
    if not directory:
        var_dir = os.environ.get("VAR_DIR") or os.path.join(os.getcwd(), "var")
        directory = os.path.join(var_dir, "prometheus-multiproc")
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def on_starting(server: Any) -> None:
    """In the master, before the workers are forked (and import prometheus-client)."""
    configure_multiprocess()


def worker_exit(server: Any, worker: Any) -> None:
    """In the exiting worker: apply what is still buffered."""
    try:
        from telemetry.core import recorder

        recorder.flush()
    except Exception:  # noqa: BLE001 - never block a worker's exit
        pass


def child_exit(server: Any, worker: Any) -> None:
    """In the master, once a worker is gone: fold its files into the archive."""
    from telemetry.metrics.multiprocess import merge_dead_process

    merge_dead_process(worker.pid)
