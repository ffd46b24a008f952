"""What the benches share on their own side: a child script in a temporary file, its
environment, running it natively or under callgrind, and callgrind's instruction totals
(the whole run's and each thread's).

A bench writes what it measures as a child script and runs it in fresh processes (see
shared BENCHMARKING.md); the child's own set-up (seeded trace ids, Django on
``bench/overhead_settings.py``, threads for ticks, the frozen heap) is ``bench/child.py``.
"""

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]

#: The first lines of every child script: the project importable (``bench.child`` with it).
PRELUDE = "import sys\nsys.path.insert(0, {root!r})\n"


def child_env(config: str, **variables: str) -> dict[str, str]:
    """The environment of a child on ``bench/overhead_settings.py`` in configuration
    ``config`` (``BENCH_CONFIG``), with ``variables`` set: string hashing seeded, no
    multiprocess metrics directory."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.overhead_settings", "BENCH_CONFIG": config,
           "PYTHONHASHSEED": "0", **variables}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@contextmanager
def child_script(body: str, **fields: object) -> Iterator[str]:
    """The path of a temporary file holding ``PRELUDE`` and ``body``, formatted with
    ``root`` (the project's) and ``fields``; removed on exit."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="bench_child_") as script:
        script.write((PRELUDE + body).format(root=str(ROOT), **fields))
        script.flush()
        yield script.name


def run_child(arguments: Sequence[str], env: Mapping[str, str], *,
              tool: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``python arguments...`` run from the project's root, natively or under ``tool`` (a
    command line that runs the rest), its output captured; raises ``CalledProcessError``
    when it fails."""
    return subprocess.run([*tool, sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)


def migrate(env: Mapping[str, str]) -> None:
    """The project's migrations applied to both databases, ``default`` and ``telemetry``."""
    for database in ("default", "telemetry"):
        run_child(["manage.py", "migrate", "-v", "0", "--database", database], env)


class Instructions(NamedTuple):
    """A child's instructions under callgrind."""

    #: The whole run's ("Collected"), every thread.
    total: int
    #: {callgrind's thread number: instructions} when counted per thread. Callgrind numbers
    #: threads from 1 (the main thread) as they start, and reuses the number of one that ended.
    threads: dict[int, int]
    #: The child's standard error (callgrind's own lines among it).
    stderr: str

    def by_name(self, names: Sequence[str], rest: str) -> dict[str, int]:
        """{name: instructions}: the first threads by ``names``, every later one summed under ``rest``."""
        totals = dict.fromkeys((*names, rest), 0)
        for number, total in self.threads.items():
            totals[names[number - 1] if number <= len(names) else rest] += total
        return totals


def callgrind(arguments: Sequence[str], env: Mapping[str, str], *, per_thread: bool = False) -> Instructions:
    """``python arguments...`` run under callgrind from the project's root; ``per_thread``
    counts each thread apart (``--separate-threads``). Raises ``CalledProcessError`` when
    the child fails."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as directory:
        output = (["--separate-threads=yes", f"--callgrind-out-file={directory}/callgrind.out"] if per_thread
                  else ["--callgrind-out-file=/dev/null"])
        result = run_child(arguments, env, tool=["valgrind", "--tool=callgrind", *output])
        threads = {int(path.name.rsplit("-", 1)[1]): _file_total(path)
                   for path in Path(directory).glob("callgrind.out-*")}
    collected = re.search(r"Collected\s*:\s*(\d+)", result.stderr)
    assert collected, result.stderr
    return Instructions(int(collected.group(1)), threads, result.stderr)


def _file_total(path: Path) -> int:
    """The instructions of one thread's callgrind output file (0 when it counted none)."""
    found = re.search(r"^(?:summary|totals):\s*(\d+)", path.read_text(), re.M)
    return int(found.group(1)) if found else 0
