"""The demo as `make demo` runs it, on embedded defaults (SQLite, file broker) in a
temporary VAR_DIR: migrate, seed, gunicorn with platform/gunicorn.conf.py, then
demo_traffic against that live server."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[2]
SERVER_ENV_REMOVED = ("DATABASE_URL", "TELEMETRY_DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
                      "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _manage(env, *arguments, timeout=60):
    completed = subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("demo_var")
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in SERVER_ENV_REMOVED}
    # As `make demo`: the REST endpoint demo_traffic serves is the one the settings allowlist.
    env.update(VAR_DIR=str(var_dir), PORT=str(port), WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1",
               DEMO_REST_PORT=str(_free_port()))
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "migrate", "--noinput", "-v", "0", "--database", "telemetry")
    seed_output = _manage(env, "seed_demo")
    log_path = var_dir / "gunicorn.log"
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "platform/gunicorn.conf.py", "config.wsgi"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                requests.get(base_url + "/admin/login/", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                # A worker's first request imports the URLconf: slow on a busy machine.
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        yield {"url": base_url, "env": env, "seed_output": seed_output, "var_dir": var_dir, "log": log_path}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


def _printed_login(seed_output, label):
    match = re.search(rf"^{label}:.*?(?:login: )?(\S+) / (\S+)\s*$", seed_output, re.MULTILINE)
    assert match, seed_output
    return match.group(1), match.group(2)


def test_seed_prints_the_url_and_admin_login_of_this_port(live_demo):
    assert f"{live_demo['url']}/admin/" in live_demo["seed_output"]
    assert _printed_login(live_demo["seed_output"], "Admin") == ("admin", "admin-demo-password")


def test_admin_login_page_and_its_stylesheet_are_served(live_demo):
    page = requests.get(live_demo["url"] + "/admin/login/", timeout=10)
    assert page.status_code == 200 and 'name="username"' in page.text
    stylesheet_paths = re.findall(r'href="(/static/admin/css/[^"]+\.css)"', page.text)
    assert stylesheet_paths, page.text
    stylesheet = requests.get(live_demo["url"] + stylesheet_paths[0], timeout=10)
    assert stylesheet.status_code == 200 and "text/css" in stylesheet.headers["Content-Type"]


def test_admin_accepts_the_printed_login(live_demo):
    username, password = _printed_login(live_demo["seed_output"], "Admin")
    browser = requests.Session()
    login_page = browser.get(live_demo["url"] + "/admin/login/", timeout=10)
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    response = browser.post(live_demo["url"] + "/admin/login/?next=/admin/", timeout=10, data={
        "username": username, "password": password, "csrfmiddlewaretoken": csrf_token, "next": "/admin/"},
        headers={"Referer": live_demo["url"] + "/admin/login/"})
    assert response.status_code == 200 and response.url.endswith("/admin/"), response.text[:500]
    assert "Log out" in response.text or "logout" in response.text


def test_schema_and_api_with_the_printed_builder_login(live_demo):
    assert requests.get(live_demo["url"] + "/api/schema/", timeout=30).status_code == 200
    username, password = _printed_login(live_demo["seed_output"], "Builder")
    login = requests.post(live_demo["url"] + "/api/auth/login", json={"username": username, "password": password},
                          timeout=10)
    assert login.status_code == 200, login.text
    listing = requests.get(live_demo["url"] + "/api/apps/", timeout=10,
                           headers={"Authorization": f"Token {login.json()['token']}"})
    assert listing.status_code == 200, listing.text
    payload = listing.json()
    apps = payload["results"] if isinstance(payload, dict) else payload
    assert {app["slug"] for app in apps} >= {"acme-customers", "acme-sales", "acme-ops"}


@pytest.fixture(scope="module")
def demo_traffic(live_demo):
    """300 requests of demo_traffic against the live server (once per module)."""
    database = sqlite3.connect(live_demo["var_dir"] / "platform.sqlite3")
    try:
        versions_before = database.execute("SELECT COUNT(*) FROM apps_builder_appversion").fetchone()[0]
        # A count, not a time box: on a loaded machine the clients' logins alone can take
        # seconds. 300 requests hold a release (4 % of actions) with certainty in practice.
        completed = subprocess.run(
            [sys.executable, "manage.py", "demo_traffic", "--url", live_demo["url"], "--seconds", "600",
             "--max-requests", "300", "--concurrency", "2", "--pause", "0", "--summary-seconds", "1",
             "--seed", "7"],
            cwd=ROOT, env=live_demo["env"], capture_output=True, text=True, timeout=600,
        )
        versions_after = database.execute("SELECT COUNT(*) FROM apps_builder_appversion").fetchone()[0]
        rest_base_urls = [row[0] for row in database.execute(
            "SELECT json_extract(options, '$.base_url') FROM apps_builder_datasource WHERE kind = 'restapi'")]
    finally:
        database.close()
    return {"completed": completed, "versions": (versions_before, versions_after), "rest_base_urls": rest_base_urls}


def test_demo_traffic_exercises_the_live_server(live_demo, demo_traffic):
    completed = demo_traffic["completed"]
    versions_before, versions_after = demo_traffic["versions"]
    assert completed.returncode == 0, completed.stdout + completed.stderr
    final = next(line for line in completed.stdout.splitlines() if line.startswith("demo_traffic finished: "))
    counts = dict(re.findall(r"(\w+)=(\d+)", final))
    assert int(counts["requests"]) == 300, final
    assert int(counts["2xx"]) > 150 and int(counts["4xx"]) > 0, final
    statuses = next(line for line in completed.stdout.splitlines() if line.startswith("demo_traffic statuses: "))
    assert "500=" not in statuses, statuses + "\n" + live_demo["log"].read_text()[-3000:]
    assert int(counts["rest_endpoint_hits"]) > 0, final
    assert int(counts.get("releases", 0)) > 0 and versions_after > versions_before, final
    rest_base_urls = demo_traffic["rest_base_urls"]
    assert all(url.startswith("http://127.0.0.1:") and not url.endswith(":9/") for url in rest_base_urls)


#: The reports the Celery beat schedule builds, built here at once (the test runs no beat).
BUILD_REPORTS = (
    "from telemetry.queries import reports; "
    "reports.build_slow_query_report(hours=24); reports.build_optimization_report(hours=24)"
)
#: An admin page taller than this at 1280 px hides its content below endless rows.
MAX_PAGE_HEIGHT = 12_000


def _admin_pages(browser, base_url):
    """Every telemetry admin page of the navigation sidebar (the telemetry index opens the
    overview), the first detail page of each list, and the waterfall and organization pages
    reached from them."""

    def links(selector):
        return [link.get_attribute("href") for link in browser.find_elements(By.CSS_SELECTOR, selector)]

    index = base_url + "/admin/telemetry/"
    browser.get(index)
    lists = [href for href in links("#nav-sidebar .app-telemetry a") if href != index and "/add/" not in href]
    pages = {}
    for href in dict.fromkeys(lists):
        name = href.rstrip("/").rsplit("/", 1)[-1]
        pages[name] = href
        browser.get(href)
        details = [link for link in links("#result_list tbody tr a, #content-main table tbody tr a")
                   if link.startswith(href) and link.split("?")[0] != href]
        if details:
            pages[name + "_detail"] = details[0]
    return pages


def test_every_telemetry_admin_page_fits_the_screen(live_demo, demo_traffic, browser):
    """After the demo's traffic plus 20,000 generated spans: each page answers, has no
    horizontal overflow at 1280 and 1920 px with the navigation sidebar open, and is of a
    bounded height; a screenshot of each is saved (into docs/admin/ with
    TELEMETRY_DOCS_SCREENSHOTS=1, where the README's pictures come from)."""
    _manage(live_demo["env"], "generate_spans", "--spans", "20000", "--days", "2", "--seed", "3", timeout=300)
    _manage(live_demo["env"], "shell", "-c", BUILD_REPORTS, timeout=300)
    base_url = live_demo["url"]
    browser.set_window_size(1280, 1000)
    browser.get(base_url + "/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("admin-demo-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    browser.find_element(By.ID, "user-tools")
    pages = _admin_pages(browser, base_url)
    expected = {"routestat", "trace", "trace_detail", "querystat", "querystat_detail", "queryfinding",
                "queryfinding_detail", "queryreport", "queryreport_detail", "organizationusage",
                "organizationusage_detail", "releaseroutestats", "logentry"}
    assert expected <= set(pages), sorted(pages)
    shots = ROOT / ("docs/admin" if os.environ.get("TELEMETRY_DOCS_SCREENSHOTS") else "tests/artifacts/admin")
    shots.mkdir(parents=True, exist_ok=True)
    problems = []
    for width in (1280, 1920):
        browser.set_window_size(width, 1000)
        for name, url in pages.items():
            browser.get(url)
            assert browser.find_elements(By.ID, "nav-sidebar"), f"{name}: no navigation sidebar ({url})"
            title = browser.title
            if "error" in title.lower() or "not found" in title.lower():
                problems.append(f"{name} at {width} px: {title} ({url})")
                continue
            overflow, height = browser.execute_script(
                "const root = document.documentElement;"
                " return [root.scrollWidth - root.clientWidth, root.scrollHeight]")
            if overflow > 0:
                problems.append(f"{name} at {width} px: {overflow} px of horizontal overflow ({url})")
            if width == 1280:
                if height > MAX_PAGE_HEIGHT:
                    problems.append(f"{name}: {height} px tall ({url})")
                browser.save_screenshot(str(shots / f"{name}.png"))
    assert not problems, "\n".join(problems)
