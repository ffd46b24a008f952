"""A real Prometheus (Debian's ``prometheus``) scrapes a live gunicorn of the platform on
embedded defaults and answers PromQL over what it scraped; ``promtool check metrics``
lints the exposition. A missing binary fails the test: ``bash .ci/services`` installs it."""

import shutil
import subprocess
import sys

import pytest
import requests

from tests.live import ROOT, embedded_env, free_port, gunicorn, wait_until

#: promtool's notes on our exposition that are kept on purpose (docs/metrics.md, metric table):
#: the seed inventory names a gauge ``db_client_connection_count`` (OpenTelemetry's
#: ``db.client.connection.count``), and promtool's lint dislikes ``_count`` on a gauge.
KNOWN_PROMTOOL_NOTES = {
    'db_client_connection_count non-histogram and non-summary metrics should not have "_count" suffix',
}
ADMIN_LOGINS = 7
FAILED_API_LOGINS = 4


def binary(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run `bash .ci/services` (Debian package prometheus)")
    return path


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """gunicorn (2 workers, multiprocess metrics) on SQLite files in a temporary VAR_DIR."""
    var_dir = tmp_path_factory.mktemp("prometheus_var")
    (var_dir / "prom").mkdir()
    env = embedded_env(var_dir, PROMETHEUS_MULTIPROC_DIR=var_dir / "prom")
    for arguments in ([], ["--database", "telemetry"]):
        completed = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0", *arguments],
                                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert completed.returncode == 0, completed.stderr
    with gunicorn(env, workers=2, threads=2, log_path=var_dir / "gunicorn.log") as (base_url, _):
        yield base_url


@pytest.fixture(scope="module")
def traffic(live_app):
    """Known traffic, sent once: admin login pages and failed API logins."""
    for _ in range(ADMIN_LOGINS):
        # A new connection each time, so the requests spread over both workers.
        response = requests.get(live_app + "/admin/login/", timeout=10, headers={"Connection": "close"})
        assert response.status_code == 200
    for index in range(FAILED_API_LOGINS):
        response = requests.post(live_app + "/api/auth/login", json={"username": f"nobody{index}", "password": "x"},
                                 timeout=10, headers={"Connection": "close"})
        assert response.status_code == 401, response.text
    return live_app


@pytest.fixture(scope="module")
def prometheus(traffic, tmp_path_factory):
    """A Prometheus scraping the live app every second; yields ``query(promql) -> [results]``."""
    executable = binary("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    target = traffic.split("//", 1)[1]
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: platform\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = open(work / "prometheus.log", "wb")
    process = subprocess.Popen(
        [executable, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def ready():
        assert process.poll() is None, (work / "prometheus.log").read_text()[-2000:]
        try:
            return requests.get(base + "/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def query(promql):
        body = requests.get(base + "/api/v1/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    try:
        wait_until(ready, timeout=60, message="Prometheus did not become ready")
        yield query
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def scalar(query, promql):
    results = query(promql)
    return float(results[0]["value"][1]) if results else None


def test_prometheus_scrapes_the_app_and_counts_every_request(prometheus):
    wait_until(lambda: scalar(prometheus, 'up{job="platform"}') == 1, timeout=30,
               message="the app was never scraped successfully")
    requests_promql = 'sum(http_server_request_duration_seconds_count{http_route="/admin/login/"})'
    seen = []
    assert wait_until(lambda: seen.append(scalar(prometheus, requests_promql)) or seen[-1] == ADMIN_LOGINS,
                      timeout=30, interval=0.5, message=f"Prometheus never saw every request: {seen[-3:]}")
    assert scalar(prometheus, 'sum(user_logins_total{status="failure"})') == FAILED_API_LOGINS
    assert scalar(prometheus, 'sum(api_calls_total{endpoint="/api/auth/login", status_class="4xx"})') \
        == FAILED_API_LOGINS
    # Histograms arrive whole: the +Inf bucket equals the count for every series.
    assert prometheus('http_server_request_duration_seconds_count != ignoring(le) '
                      'http_server_request_duration_seconds_bucket{le="+Inf"}') == []


def test_promtool_finds_only_the_known_naming_note(traffic):
    executable = binary("promtool")
    exposition = requests.get(traffic + "/metrics", timeout=10).text
    assert "# TYPE db_client_connection_count gauge" in exposition
    assert "http_server_request_duration_seconds_count" in exposition
    checked = subprocess.run([executable, "check", "metrics"], input=exposition, capture_output=True, text=True,
                             timeout=60)
    notes = {line.strip() for line in (checked.stdout + checked.stderr).splitlines() if line.strip()}
    assert notes == KNOWN_PROMTOOL_NOTES, notes
    assert checked.returncode == 3  # lint notes only; 1 would be an unparsable exposition
