"""`make demo`, the newcomer's one command, on embedded defaults (SQLite, file broker) in
a temporary VAR_DIR: web, worker, beat and traffic come up from platform/Procfile, the
platform's activity reaches /metrics (requests, plugin runs, a beat-scheduled task run by
the worker over the file broker), and Ctrl-C stops every process it started."""

import os
import signal
import subprocess

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.live import ROOT, embedded_env, free_port, wait_until


def scraped(base_url):
    """{(sample name, frozenset of labels): value} of one scrape."""
    text = requests.get(base_url + "/metrics", timeout=10).text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples, name, **labels):
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)


def activity_seen(base_url):
    samples = scraped(base_url)
    return (total(samples, "http_server_request_duration_seconds_count", http_route="/api/apps/<slug>/view/") > 0
            and total(samples, "tooljet_plugin_query_execution_count_total") > 0
            and total(samples, "user_logins_total", status="success") > 0
            and total(samples, "tooljet_task_executions_total", task="telemetry.sample_queue_depth",
                      status="success") > 0)


def test_make_demo_runs_the_stack_fills_metrics_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = embedded_env(tmp_path, PORT=port, PROMETHEUS_MULTIPROC_DIR=tmp_path / "prom")
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        make = subprocess.Popen(["make", "demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    started = []

    def login_page():
        assert make.poll() is None, log_path.read_text()[-3000:]
        try:
            return requests.get(base_url + "/admin/login/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(login_page, timeout=180, interval=0.5, message="make demo never served the login page")
        started = psutil.Process(make.pid).children(recursive=True)
        commands = " ".join(" ".join(child.cmdline()) for child in started)
        for part in ("gunicorn", "celery -A config worker", "celery -A config beat", "demo_traffic"):
            assert part in commands, commands
        wait_until(lambda: activity_seen(base_url), timeout=120, interval=2,
                   message="the demo's activity never reached /metrics: " + log_path.read_text()[-3000:])
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], [" ".join(process.cmdline()) for process in alive]
