"""Request and statement counts that survive ``kill -9`` of a gunicorn worker: the
middleware increments them on the request thread, so they are in the registry (under
gunicorn, the multiprocess files) before the response is sent, not a flush later."""

import glob
import os
import re
import signal
import subprocess
import sys
import threading
import uuid

import psutil
import pytest
import requests
from django.contrib.auth.models import Group
from django.http import JsonResponse
from django.urls import path
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from telemetry import api
from tests.live import ROOT, embedded_env, gunicorn, wait_until


def two_statements(request):
    return JsonResponse({"groups": Group.objects.count(), "named": Group.objects.filter(name="x").count()})


def no_statement(request):
    return JsonResponse({}, status=202)


urlpatterns = [path("two", two_statements), path("none", no_statement)]


def labelled(route, status):
    return {"http_request_method": "GET", "http_route": route, "http_response_status_code": status}


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_counts_are_in_the_registry_when_the_response_returns_before_any_flush(client):
    """Tests run the recorder in the foreground: nothing is applied until a flush, so a
    count already there was added by the request thread itself."""
    api.flush()

    def read():
        return [REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in (
            ("http_server_requests_total", labelled("/two", "200")),
            ("db_client_operations_in_requests_total", labelled("/two", "200")),
            ("http_server_requests_total", labelled("/none", "202")),
            ("db_client_operations_in_requests_total", labelled("/none", "202")),
            ("http_server_request_duration_seconds_count", {**labelled("/two", "200"), "organization_id": ""}),
        )]

    before = read()
    for _ in range(3):
        assert client.get("/two").status_code == 200
    assert client.get("/none").status_code == 202
    assert [after - start for after, start in zip(read(), before, strict=True)] == [3, 6, 1, 0, 0]
    api.flush()  # the deferred histogram catches up at the flush
    assert [after - start for after, start in zip(read(), before, strict=True)] == [3, 6, 1, 0, 3]


# ---------------------------------------------------------------------------- kill -9 under gunicorn

ROUTE = "/admin/login/"
#: A session cookie naming no session: each request reads ``django_session`` once to find
#: out, so every request of the route runs the same statements.
COOKIES = {"sessionid": uuid.uuid4().hex}
TOTAL = 240
KILL_AT = (60, 140)


def scraped(base_url):
    """(requests, statements) of ``GET ROUTE`` answered 200, summed over every process."""
    text = requests.get(base_url + "/metrics", timeout=10).text
    values = {"http_server_requests": 0.0, "db_client_operations_in_requests": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name in values:
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == labelled(ROUTE, "200"):
                    values[family.name] += sample.value
    return values["http_server_requests"], values["db_client_operations_in_requests"]


class Client(threading.Thread):
    """Sends ``GET ROUTE`` one at a time, a new connection each (so the workers share
    them), until ``TOTAL`` answered 200. ``sent`` counts every attempt, ``completed``
    only the 200s received; a request whose worker died mid-way is sent, not completed."""

    def __init__(self, base_url):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.sent = self.completed = self.failed = 0
        self.other_status = []

    def run(self):
        while self.completed < TOTAL and self.failed < 50:
            self.sent += 1
            try:
                response = requests.get(self.base_url + ROUTE, timeout=20, cookies=COOKIES,
                                        headers={"Connection": "close"})
            except requests.RequestException:
                self.failed += 1
                continue
            if response.status_code == 200:
                self.completed += 1
            else:
                self.other_status.append(response.status_code)


@pytest.fixture
def server(tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = embedded_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    # The platform database only (sessions); telemetry's store is not needed here.
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as (base_url, process):
        yield base_url, process, metrics_dir


def kill_a_serving_worker(master, metrics_dir):
    """``kill -9`` of a live worker that has counted requests; returns its pid."""
    counted = {int(re.search(r"_(\d+)\.db$", path).group(1)) for path in glob.glob(str(metrics_dir / "counter_*.db"))
               if "archive" not in path}
    victim = next(worker for worker in psutil.Process(master.pid).children()
                  if worker.pid in counted and worker.status() != psutil.STATUS_ZOMBIE)
    os.kill(victim.pid, signal.SIGKILL)
    return victim.pid


def test_request_and_statement_counts_survive_kill_9_of_a_worker(server):
    base_url, master, metrics_dir = server
    # One request alone gives the statements each request of the route runs.
    assert requests.get(base_url + ROUTE, timeout=20, cookies=COOKIES).status_code == 200
    before_requests, before_statements = scraped(base_url)
    assert before_requests == 1
    per_request = before_statements
    assert per_request >= 1

    client = Client(base_url)
    client.start()
    killed = []
    for threshold in KILL_AT:
        wait_until(lambda threshold=threshold: client.completed >= threshold or not client.is_alive(),
                   timeout=120, interval=0.01, message=f"{threshold} responses never arrived")
        killed.append(kill_a_serving_worker(master, metrics_dir))
    client.join(timeout=300)
    assert not client.is_alive(), "the client never received its responses"
    assert (client.completed, client.other_status) == (TOTAL, [])
    wait_until(lambda: len(psutil.Process(master.pid).children()) == 2, timeout=60,
               message="master did not replace the killed workers")
    wait_until(lambda: not any(glob.glob(str(metrics_dir / f"*_{pid}.db")) for pid in killed), timeout=20,
               message="the killed workers' files were not merged")

    counted_requests, counted_statements = scraped(base_url)
    counted_requests -= before_requests
    counted_statements -= before_statements
    # Every response the client received was counted; a request whose worker died after
    # counting it but before its response left may be counted too, never more than sent.
    assert client.completed <= counted_requests <= client.sent
    assert per_request * client.completed <= counted_statements <= per_request * client.sent
