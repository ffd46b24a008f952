from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TelemetryConfig(AppConfig):
    name = "telemetry"
    verbose_name = "Telemetry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Installs the hooks once per process; a second call does nothing."""
        from telemetry import checks, conf, extras, tracing  # noqa: F401 - importing checks registers them
        from telemetry.adapters import prometheus
        from telemetry.core import recorder, routers
        from telemetry.db import commands
        from telemetry.db import wrapper as db
        from telemetry.pipeline import handlers, sampler
        from telemetry.tracing import logs, processor
        from telemetry.usage import auth as signals  # noqa: F401

        if extras.installed(extras.CELERY):
            # Registers the tasks and their beat schedule with the host's Celery app.
            from telemetry.tasks import receivers as jobs

        post_migrate.connect(routers.recheck_migrations, dispatch_uid="telemetry.recheck_migrations")
        tracing.setup()
        conf.on_change(processor.read_settings)  # the trace store also writes log rows, traces on or off
        conf.on_change(logs.read_settings)
        if not conf.get("METRICS_ENABLED"):
            return
        conf.on_change(recorder.read_settings)
        conf.on_change(lambda: prometheus.created_series(conf.get("METRICS_CREATED_SERIES")))
        conf.on_change(db._read_settings)
        handlers.register_all()
        recorder.register_periodic(sampler.sample)
        db.install()
        commands.install()
        signals.connect()
        if extras.installed(extras.CELERY):
            jobs.connect()
