"""Observability for a Django low-code platform: metrics, traces, query intelligence."""

#: The distribution's one version string (pyproject.toml reads it for the build).
__version__ = "0.1.0"
