"""``{% load telemetry_format %}``: ``|compact`` (a statement on one line),
``|duration`` (milliseconds with their unit),
``|timestamp`` (ISO with seconds and zone) and ``|when`` (a timestamp with its age), as
``telemetry.admin.formatting`` writes them."""

from django import template

from telemetry.admin import formatting

register = template.Library()
register.filter("compact", formatting.compact)
register.filter("duration", formatting.duration)
register.filter("timestamp", formatting.timestamp)
register.filter("when", formatting.when)
