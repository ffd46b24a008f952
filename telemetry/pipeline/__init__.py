"""The flusher's consumers: a handler per event type that turns recorded events into
metric updates, query statistics, usage counts and spans (``handlers``), and the
periodic sampler (``sampler``: process resources, connection gauges, the in-process
tables' writes, registered pool samplers).

Runs in the flusher thread only. May import every capability below it (core, metrics,
db, queries, tracing, usage); never http, tasks, api or admin.
"""
