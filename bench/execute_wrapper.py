"""Cost of the execute wrapper per statement, against a bare cursor, in one run.

The same repeated statement (new parameters each time, like an ORM lookup in a loop) runs
N1 and N2 times through Django's cursor on PostgreSQL with telemetry off, then on
(wrapper, recorder, drain: metrics, per-fingerprint statistics and analysis, the whole
CPU cost), and with telemetry on but never drained (the calling thread's share).
Instructions under callgrind (shared BENCHMARKING.md), (total2 - total1) / (N2 - N1).

    DATABASE_URL=postgres://... .venv/bin/python bench/execute_wrapper.py [--n1 200 --n2 1200]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"bare cursor": ("off", ""), "telemetry, drained": ("everything", ""),
           "telemetry, calling thread only": ("everything", "1")}

CHILD = r"""
import gc, os, sys
sys.path.insert(0, {root!r})
import django
django.setup()
from django.db import connection
SQL = 'SELECT "auth_user"."id", "auth_user"."username" FROM "auth_user" WHERE "auth_user"."id" = %s'
def run(count):
    with connection.cursor() as cursor:
        for index in range(count):
            cursor.execute(SQL, [index])
            cursor.fetchall()
    if os.environ.get("BENCH_NO_DRAIN"):
        return
    from telemetry.core import recorder
    recorder.flush()
run(50)
gc.collect()
gc.freeze()
run(int(sys.argv[1]))
if os.environ.get("BENCH_NO_DRAIN"):
    os._exit(0)  # no drain at exit either: the calling thread's share alone
"""


def instructions(config, no_drain, count, script, var_dir):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.overhead_settings", "BENCH_CONFIG": config,
           "PYTHONHASHSEED": "0", "VAR_DIR": var_dir, "BENCH_BATCHED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if no_drain:
        env["BENCH_NO_DRAIN"] = "1"
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, str(count)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    return int(re.search(r"Collected\s*:\s*(\d+)", result.stderr).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=200)
    parser.add_argument("--n2", type=int, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-var-") as var_dir, \
            tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(CHILD.format(root=str(ROOT)))
        handle.flush()
        for database in ("default", "telemetry"):
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0", "--database", database], cwd=ROOT,
                           env={**os.environ, "VAR_DIR": var_dir}, check=True, capture_output=True)
        per_statement = {}
        for name, (config, no_drain) in CONFIGS.items():
            first = instructions(config, no_drain, args.n1, handle.name, var_dir)
            second = instructions(config, no_drain, args.n2, handle.name, var_dir)
            per_statement[name] = (second - first) / (args.n2 - args.n1)
    bare = per_statement["bare cursor"]
    print(f"Instructions per statement (callgrind, N={args.n1} and {args.n2}), repeated statement:")
    for name, value in per_statement.items():
        print(f"  {name:<32}{value / 1e3:>9.1f} k   added {(value - bare) / 1e3:>+8.1f} k")


if __name__ == "__main__":
    main()
