"""Connection metrics of Django 5.2's psycopg pool on the real PostgreSQL: pool size,
idle maximum, checkout wait and a checkout that times out."""

import json
import os
import subprocess
import sys

from tests.live import ROOT

SCRIPT = r"""
import json, threading, time
import django
django.setup()
from django.db import connection
from prometheus_client import REGISTRY
from telemetry.core import recorder

recorder.run_in_foreground()
held = threading.Event()
errors = []

def holder():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    held.set()
    time.sleep(1.5)
    connection.close()

def waiter():
    held.wait(10)
    try:
        connection.ensure_connection()
    except Exception as exc:
        errors.append(type(exc).__name__)
    finally:
        connection.close()

threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
recorder.flush(sample=True)
value = lambda name, **labels: REGISTRY.get_sample_value(name, labels)
print(json.dumps({
    "errors": errors,
    "timeouts": value("db_client_connection_timeouts_total", db_system="postgresql"),
    "waits": value("db_client_connection_wait_time_seconds_count", db_system="postgresql"),
    "count": value("db_client_connection_count", db_client_connection_pool_name="default", db_system="postgresql"),
    "idle_max": value("db_client_connection_idle_max", db_client_connection_pool_name="default"),
    "pending": value("db_client_connection_pending_requests", db_client_connection_pool_name="default"),
}))
"""


def test_pool_metrics_with_a_checkout_timeout():
    env = {**os.environ, "DATABASE_POOL": "1", "DATABASE_POOL_MAX_SIZE": "1", "DATABASE_POOL_TIMEOUT": "0.5",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    assert env["DATABASE_URL"].startswith("postgres")
    completed = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["errors"] == ["OperationalError"]  # Django wraps psycopg_pool.PoolTimeout
    assert figures["timeouts"] == 1
    assert figures["waits"] == 2  # the holder's checkout and the final one
    assert figures["count"] == 1
    assert figures["idle_max"] == 1
    assert figures["pending"] == 0
