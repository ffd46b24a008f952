"""Usage: active users (``activity``), hourly per-organization rollups (``rollups``),
latency per release and the release comparison (``releases``), logins and sessions
from Django's auth signals (``auth``).

May import the core and metrics; never queries, tracing or anything above them.
"""
