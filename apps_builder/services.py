"""Business operations of the builder and viewer, with their telemetry."""

import dataclasses
from time import perf_counter

from django.db import transaction
from opentelemetry import trace

import plugins
from telemetry import api as telemetry

from .models import App, AppTemplate, AppVersion, DataQuery, DataSource

tracer = trace.get_tracer("apps_builder")


@dataclasses.dataclass
class RunOutcome:
    ok: bool
    data: dict = None
    error: plugins.PluginError = None

    def as_response_body(self):
        if self.ok:
            return {"status": "ok", "data": self.data}
        return {"status": "error", "error": {"code": self.error.code, "message": self.error.message}}


def run_query(query, parameters=None):
    """Runs a data query through its data source's plugin. A failing datasource is an
    outcome (with the plugin's error), never an exception."""
    data_source = query.data_source
    started = perf_counter()
    with telemetry.span("app_query.run", **{"app.id": str(query.app_id), "datasource.kind": data_source.kind}):
        try:
            result = plugins.run_query(
                data_source_id=data_source.pk, kind=data_source.kind, options=data_source.connection_options(),
                query=query.options, parameters=parameters or {}, organization_id=data_source.organization_id,
            )
            outcome = RunOutcome(True, data=dataclasses.asdict(result))
        except plugins.PluginError as error:
            outcome = RunOutcome(False, error=error)
            telemetry.record_app_error(query.app_id, error.code, "query")
    telemetry.record_app_query(query.app_id, query.name, "success" if outcome.ok else "error",
                               data_source.kind, perf_counter() - started)
    return outcome


def load_for_viewer(app, environment="production", mode="direct"):
    """The released definition and the results of its on-load queries."""
    started = perf_counter()
    version = app.released_version
    queries = {}
    for query in app.queries.filter(run_on_page_load=True).select_related("data_source"):
        queries[query.name] = run_query(query).as_response_body()
    telemetry.record_app_load(app.pk, perf_counter() - started, environment=environment, mode=mode)
    return {
        "app": {"slug": app.slug, "name": app.name},
        "version": version.name,
        "released_at": version.released_at,
        "definition": version.definition,
        "queries": queries,
    }


def create_version(app, name):
    return AppVersion.objects.create(app=app, name=name, definition=app.definition)


def release(version):
    with telemetry.span("app_lifecycle.release", **{"app.id": str(version.app_id)}):
        version.release()
    telemetry.track_feature("app_builder", "release_version", version.app.organization_id)
    return version


@transaction.atomic
def create_from_template(template: AppTemplate, organization, name, slug, user):
    """Clones a template: its definition, then its queries on the organization's data
    source of the same kind. Raises ``LookupError`` naming a missing kind."""
    with tracer.start_as_current_span("app_lifecycle.create") as span:
        span.set_attribute("app.type", "template_clone")
        span.set_attribute("organization.id", str(organization.pk))
        sources = {}
        for spec in template.queries:
            kind = spec.get("kind")
            if kind not in sources:
                source = DataSource.objects.filter(organization=organization, kind=kind).order_by("id").first()
                if source is None:
                    raise LookupError(kind)
                sources[kind] = source
        with tracer.start_as_current_span("database.insert") as insert_span:
            insert_span.set_attribute("db.collection.name", "apps")
            app = App.objects.create(organization=organization, name=name, slug=slug,
                                     definition=template.definition, created_by=user)
        with tracer.start_as_current_span("template.clone") as clone_span:
            clone_span.set_attribute("template.id", str(template.pk))
            DataQuery.objects.bulk_create([
                DataQuery(app=app, data_source=sources[spec["kind"]], name=spec["name"],
                          options=spec.get("options", {}), run_on_page_load=spec.get("run_on_page_load", False))
                for spec in template.queries
            ])
    telemetry.track_feature("app_builder", "clone_template", organization.pk)
    return app
