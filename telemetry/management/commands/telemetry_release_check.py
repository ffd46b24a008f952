"""``manage.py telemetry_release_check``: a deploy gate on release comparison.

Compares each route's latency in the current release with the previous one (Welch's t on
the hourly means, as the ``compare_releases`` task does) and exits 1 when a route has a
significant regression of the class ``--fail-on`` or worse, 0 otherwise (also when there is
no previous release to compare with: nothing is known to be worse).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from telemetry import conf
from telemetry.usage import releases


class Command(BaseCommand):
    help = "Exit 1 when the current release is significantly slower than the previous one on some route."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--release", help="the release to check (default: the running one, or the newest)")
        parser.add_argument("--against", help="the release to compare with (default: the one before)")
        parser.add_argument("--fail-on", choices=releases.REGRESSION_CLASSES,
                            help="the mildest regression class that fails (default: RELEASE_CHECK_FAIL_ON)")

    def handle(self, *args: Any, **options: Any) -> None:
        comparison = releases.route_comparison(options["release"], options["against"])
        for name in ("release", "against"):
            if options[name] and options[name] not in comparison.releases:
                raise CommandError(f"no latency stored for release {options[name]!r}; known: "
                                   f"{', '.join(comparison.releases) or 'none'}")
        if comparison.current is None or comparison.previous is None:
            self.stdout.write(f"release {comparison.current or '-'}: no earlier release to compare with")
            return
        self.stdout.write(f"release {comparison.current} against {comparison.previous}, "
                          f"performance score {_score(comparison.current_score)} (was "
                          f"{_score(comparison.previous_score)})")
        for row in comparison.routes:
            self.stdout.write(
                f"  {row.verdict_label:<20} {row.route}: {row.previous_mean_ms:.1f} ms -> "
                f"{row.current_mean_ms:.1f} ms ({row.change:+.0%}, t={row.t:.2f}, n={row.previous_count}/"
                f"{row.current_count})")
        fail_on = options["fail_on"] or conf.get("RELEASE_CHECK_FAIL_ON")
        failing = comparison.regressions(fail_on)
        if failing:
            self.stderr.write(f"{len(failing)} route(s) regressed ({fail_on} or worse): "
                              + ", ".join(row.route for row in failing))
            raise SystemExit(1)
        self.stdout.write(f"no {fail_on} or worse regression")


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"
