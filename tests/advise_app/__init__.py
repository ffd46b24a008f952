"""A test-only app (installed by ``tests.settings`` only): a table owned by a Django model
with no index on its filtered columns, for ``manage.py telemetry_advise`` and the
migrations it writes."""
