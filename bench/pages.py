"""Timing admin pages side by side: Django's test Client logged in as a superuser,
interleaved rounds, medians and min-max, with the statements each page sends to the
telemetry alias and their median total time (the part that depends on the volume stored)."""

import statistics
import time


def time_pages(client, connection, pages, rounds, before_each=None):
    """``pages``: ``{name: url}``; every page answers 200 (warmed up once first).
    ``before_each(name)`` runs untimed before each request (e.g. to clear a cache)."""
    from django.db import reset_queries
    from django.test.utils import CaptureQueriesContext

    for url in pages.values():  # warm-up: templates, connections, filter choices
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    timings = {name: [] for name in pages}
    queries = {}
    sql_seconds = {name: [] for name in pages}
    for _ in range(rounds):
        for name, url in pages.items():
            if before_each:
                before_each(name)
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                timings[name].append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            queries[name] = len(captured)
            sql_seconds[name].append(sum(float(query["time"]) for query in captured.captured_queries))
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"  {name:<44} {median * 1e3:7.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})"
              f"  {queries[name]} queries {statistics.median(sql_seconds[name]) * 1e3:6.1f} ms")
