"""Starting real server processes for tests: free ports, readiness, clean shutdown."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from django.db import connections

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=30.0, interval=0.2, message="condition not met"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)


def embedded_env(var_dir, **extra):
    """The environment of a process on embedded defaults in ``var_dir``."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "TELEMETRY_DATABASE_URL", "CELERY_BROKER_URL",
                          "CELERY_RESULT_BACKEND", "PROMETHEUS_MULTIPROC_DIR", "DJANGO_SETTINGS_MODULE")}
    env.update(VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    env.update({key: str(value) for key, value in extra.items()})
    return env


@contextmanager
def serving(argv, *, cwd, env, base_url, probe_path, ok_statuses=(200,), log_path=None, timeout=60):
    """Runs a server process in its own session until ``base_url + probe_path`` answers one
    of ``ok_statuses``; yields the process; stops the whole process group after."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up():
        assert process.poll() is None, f"{argv[0]} exited" + (f": {Path(log_path).read_text()[-3000:]}"
                                                               if log_path else "")
        try:
            return requests.get(base_url + probe_path, timeout=5).status_code in ok_statuses
        except (requests.ConnectionError, requests.Timeout):
            # A worker's first request imports the URLconf: slow on a busy machine.
            return False

    try:
        wait_until(up, timeout=timeout, message=f"{argv[0]} did not serve {base_url}")
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log_path:
            log.close()


@contextmanager
def gunicorn(env, workers=2, threads=1, log_path=None):
    """Runs gunicorn with ``platform/gunicorn.conf.py``; yields (base_url, process)."""
    port = free_port()
    env = {**env, "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads), "PORT": str(port)}
    base_url = f"http://127.0.0.1:{port}"
    argv = [str(VENV_BIN / "gunicorn"), "-c", "platform/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    with serving(argv, cwd=ROOT, env=env, base_url=base_url, probe_path="/health", ok_statuses=(200, 503),
                 log_path=log_path) as process:
        yield base_url, process


def database_url(alias):
    """The URL of the test database Django made for ``alias`` (for a worker process that
    must write where the test reads)."""
    settings_dict = connections[alias].settings_dict
    return (f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
            f"{settings_dict['PORT']}/{settings_dict['NAME']}")


def horizontal_overflow(browser):
    """Pixels the page is wider than the window (0 or less: it fits)."""
    return browser.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


def follow(browser, element, timeout=60):
    """Clicks ``element`` and waits until the page it leads to has replaced the current one.

    A click returns before the navigation it starts; reading ``current_url`` or finding an
    element right after it can still see the old page on a loaded machine.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, timeout).until(staleness_of(page))


def admin_login(browser, base_url, user_model, username="admin"):
    """Creates a superuser and signs it in through the admin login form."""
    from selenium.webdriver.common.by import By

    user_model.objects.create_superuser(username, f"{username}@example.com", f"pw-{username}")
    browser.get(base_url + "/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(f"pw-{username}")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # Wait for the signed-in page: navigating on at once can race the login POST.
    browser.find_element(By.ID, "user-tools")
