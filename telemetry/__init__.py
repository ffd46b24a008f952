"""Observability for a Django low-code platform: metrics, traces, query intelligence."""
