"""Plugins by kind: ``conf.PLUGIN_CLASSES`` maps a kind to a dotted path, imported on
first use and cached (one instance per kind, per process)."""

from functools import cache

from django.utils.module_loading import import_string

from . import conf
from .base import Plugin
from .errors import ConfigurationError


def available_kinds():
    return sorted(conf.get("PLUGIN_CLASSES"))


@cache
def get_plugin(kind):
    """The plugin instance of ``kind``; ``ConfigurationError`` for an unknown kind."""
    dotted_path = conf.get("PLUGIN_CLASSES").get(kind)
    if dotted_path is None:
        raise ConfigurationError(
            f"Unknown data source kind {kind!r}; available: {', '.join(available_kinds())}",
            code="unknown_kind",
        )
    plugin_class = import_string(dotted_path)
    if not (isinstance(plugin_class, type) and issubclass(plugin_class, Plugin)):
        raise TypeError(f"{dotted_path} is not a plugins.base.Plugin subclass")
    return plugin_class()
