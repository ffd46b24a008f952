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
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import callgrind, child_env, child_script, migrate  # noqa: E402 - run as a script

CONFIGS = {"bare cursor": ("off", ""), "telemetry, drained": ("everything", ""),
           "telemetry, calling thread only": ("everything", "1")}

CHILD = r"""
import os
from bench.child import freeze_heap, setup_django
setup_django()
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
freeze_heap()
run(int(sys.argv[1]))
if os.environ.get("BENCH_NO_DRAIN"):
    os._exit(0)  # no drain at exit either: the calling thread's share alone
"""


def instructions(config, no_drain, count, script, var_dir):
    env = child_env(config, VAR_DIR=var_dir, BENCH_BATCHED="1")
    if no_drain:
        env["BENCH_NO_DRAIN"] = "1"
    return callgrind([script, str(count)], env).total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=200)
    parser.add_argument("--n2", type=int, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-var-") as var_dir, child_script(CHILD) as script:
        migrate({**os.environ, "VAR_DIR": var_dir})
        per_statement = {}
        for name, (config, no_drain) in CONFIGS.items():
            first = instructions(config, no_drain, args.n1, script, var_dir)
            second = instructions(config, no_drain, args.n2, script, var_dir)
            per_statement[name] = (second - first) / (args.n2 - args.n1)
    bare = per_statement["bare cursor"]
    print(f"Instructions per statement (callgrind, N={args.n1} and {args.n2}), repeated statement:")
    for name, value in per_statement.items():
        print(f"  {name:<32}{value / 1e3:>9.1f} k   added {(value - bare) / 1e3:>+8.1f} k")


if __name__ == "__main__":
    main()
