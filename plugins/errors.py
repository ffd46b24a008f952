"""Errors every plugin raises. ``message`` is safe to show a user: it never holds a
password, token or the options' URL (the base class redacts them before raising)."""


class PluginError(Exception):
    """Base of plugin errors: ``code`` is a stable string, ``http_status`` the status the
    API answers with."""

    code = "plugin_error"
    http_status = 502

    def __init__(self, message, *, code=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def __repr__(self):
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def as_dict(self):
        return {"code": self.code, "message": self.message}


class ConfigurationError(PluginError):
    """Bad options, an unknown kind, or a malformed query definition."""

    code = "configuration_error"
    http_status = 400


class EgressDenied(ConfigurationError):
    """The data source egress policy refused the target (``plugins.egress``); ``rule``
    names the rule. No connection was attempted."""

    code = "egress_denied"

    def __init__(self, message, *, rule):
        super().__init__(f"Refused by the data source egress policy (rule {rule}): {message}")
        self.rule = rule


class QueryFailed(PluginError):
    """The datasource rejected the query (syntax, missing table, missing parameter)."""

    code = "query_failed"
    http_status = 400


class ConnectionFailed(PluginError):
    """The datasource could not be reached, or refused the credentials."""

    code = "connection_failed"
    http_status = 502


class QueryTimeout(PluginError):
    """The run did not finish within its timeout."""

    code = "timeout"
    http_status = 502
