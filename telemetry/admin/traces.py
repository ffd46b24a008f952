"""Admin for traces and logs: the trace list and the waterfall page."""
