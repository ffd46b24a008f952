"""HTTP: the request middleware (metrics, the server span's context, per-request query
state), the ``/metrics`` view and its fast rendering (``exposition``), the ``/health``
views, and DRF throttles that report decisions.

May import the core, metrics, tracing and the layers below them; never ``api``,
``admin`` or ``tasks``.
"""
