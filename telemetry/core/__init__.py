"""The core every capability builds on: the fail-open guard, capped label values and
route templates, per-request state and suppression, the hot-path recorder (event buffer,
flusher thread, ``Batch``), the internal bus that telemetry's own modules emit metric
updates through, the increment-upsert writer, the database router and the organization
resolver.

May import ``telemetry.conf``, ``telemetry.models`` and ``telemetry.metrics``; nothing
else of telemetry.
"""
