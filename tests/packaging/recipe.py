"""A fresh Django project with the README's "Add to your project" recipe applied, in a
virtualenv of its own with the built wheel installed: what a stranger does, step by step.

The recipe is read from the README itself: each fenced block that follows a
``<!-- recipe: TARGET -->`` comment. ``shell`` blocks are run in the project (``pip`` and
``python`` from the virtualenv, the distribution's name replaced by the wheel's path); a
file's block is appended to that file of the project package (``settings.py``,
``urls.py``) or written as the project's ``gunicorn.conf.py``.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from telemetry.extras import DISTRIBUTION
from tests.live import ROOT, free_port, serving

README = ROOT / "README.md"
RECIPE_BLOCK = re.compile(r"<!-- recipe: (?P<target>[\w.]+) -->\s*```\w*\n(?P<body>.*?)```", re.S)
PROJECT = "proj"
SUPERUSER = ("admin", "recipe-admin-password")
#: The project's own view: one statement with a predicate no other code runs.
VIEW = '''
from django.contrib.auth.models import User
from django.http import JsonResponse


def hello(request):
    return JsonResponse({"users": User.objects.filter(first_name="recipe-view").count()})
'''
#: Test-only settings, beyond the recipe: every trace kept, statistics written each second.
TEST_SETTINGS = '''
TELEMETRY = {"TRACE_SAMPLE_RATE": 1.0, "SAMPLE_INTERVAL_SECONDS": 1.0}
'''


def recipe_blocks() -> list[tuple[str, str]]:
    """(target, body) of every recipe block of the README, in order."""
    blocks = [(match["target"], match["body"]) for match in RECIPE_BLOCK.finditer(README.read_text())]
    assert {"shell", "settings.py", "urls.py", "gunicorn.conf.py"} <= {target for target, _ in blocks}, blocks
    return blocks


def constraints_file(directory: Path) -> Path:
    """requirements.txt as pip constraints: the versions the platform's suite runs on (and
    pip's cache already holds), without the editable line or extras."""
    lines = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(re.sub(r"\[.*?\]", "", line))
    path = directory / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a stranger's shell: the virtualenv first on PATH, nothing of the
    platform's settings or services."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "DATABASE", "TELEMETRY_", "CELERY_", "PROMETHEUS_", "VIRTUAL_ENV",
                                  "PYTHON", "VAR_DIR", "OTEL_"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run(command: list[str] | str, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    """Runs a command; its output (stdout and stderr), or an AssertionError with it."""
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=timeout, shell=isinstance(command, str))
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout[-5000:]}"
    return result.stdout


class Project:
    """A fresh project in ``directory`` with its virtualenv; :meth:`apply_recipe` installs
    the wheel (with ``extras``, or the core) and wires telemetry in as the README says."""

    def __init__(self, directory: Path, wheel: Path, constraints: Path, extras: str):
        self.directory = directory
        self.venv = directory / "venv"
        self.root = directory / "project"
        self.package = self.root / PROJECT
        self.wheel = wheel
        self.constraints = constraints
        self.extras = extras
        self.outputs: list[str] = []
        #: When the recipe's ``pip install`` started (time.monotonic()).
        self.installed_at = 0.0

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.venv, PIP_CONSTRAINT=str(self.constraints), PIP_DISABLE_PIP_VERSION_CHECK="1")

    def shell_line(self, line: str) -> str:
        """A recipe line for this profile: the wheel instead of the published name."""
        requirement = f"{self.wheel}[{self.extras}]" if self.extras else str(self.wheel)
        return re.sub(rf'"?{re.escape(DISTRIBUTION)}(\[[\w,]+\])?"?', shlex.quote(requirement), line, count=1)

    def apply_recipe(self) -> None:
        run([sys.executable, "-m", "venv", str(self.venv)], self.directory, os.environ.copy())
        # The web server is the project's choice, not a dependency of telemetry.
        run([str(self.venv / "bin" / "pip"), "install", "-q", "gunicorn"], self.directory, self.env)
        # Django first (from the constraints), for django-admin; the recipe installs telemetry.
        run([str(self.venv / "bin" / "pip"), "install", "-q", "Django"], self.directory, self.env)
        self.root.mkdir()
        run([str(self.venv / "bin" / "django-admin"), "startproject", PROJECT, str(self.root)], self.directory,
            self.env)
        (self.package / "views.py").write_text(VIEW)
        for target, body in recipe_blocks():
            if target == "shell":
                for line in body.splitlines():
                    if line.strip() and not line.lstrip().startswith("#"):
                        if "pip install" in line and not self.installed_at:
                            self.installed_at = time.monotonic()  # the stranger's clock starts
                        self.outputs.append(run(self.shell_line(line), self.root, self.env))
            elif target == "gunicorn.conf.py":
                (self.root / target).write_text(body)
            else:
                with open(self.package / target, "a") as file:
                    file.write("\n" + body)
        with open(self.package / "urls.py", "a") as file:
            file.write("\nfrom proj.views import hello  # noqa: E402\n\nurlpatterns += [path(\"hello/\", hello)]\n")
        with open(self.package / "settings.py", "a") as file:
            file.write(TEST_SETTINGS)

    def manage(self, *arguments: str, **env: str) -> str:
        return run([str(self.venv / "bin" / "python"), "manage.py", *arguments], self.root, {**self.env, **env})

    def create_superuser(self) -> None:
        username, password = SUPERUSER
        self.manage("createsuperuser", "--noinput", "--username", username, "--email", "admin@example.com",
                    DJANGO_SUPERUSER_PASSWORD=password)

    @contextmanager
    def gunicorn(self):
        """Serves the project with its recipe's ``gunicorn.conf.py``; yields (base URL, log path)."""
        port = free_port()
        log_path = self.directory / "gunicorn.log"
        base_url = f"http://127.0.0.1:{port}"
        argv = [str(self.venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "--workers", "2", "--no-control-socket",
                "--bind", f"127.0.0.1:{port}", f"{PROJECT}.wsgi"]
        with serving(argv, cwd=self.root, env=self.env, base_url=base_url, probe_path="/health/live",
                     log_path=log_path):
            yield base_url, log_path
