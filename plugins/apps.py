from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "plugins"
    verbose_name = "Datasource plugins"

    def ready(self):
        from telemetry import api

        from . import cache_gauges

        api.register_pool_sampler(cache_gauges)
