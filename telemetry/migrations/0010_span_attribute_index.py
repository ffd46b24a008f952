"""The trace list's search: a GIN index (``jsonb_path_ops``) on span attributes, built
concurrently on PostgreSQL only (other backends have no such index: the search bounds
itself there), and an index on a trace's status code."""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations, models


class AddIndexOnPostgreSQL(migrations.AddIndex):
    """``AddIndex`` with ``CREATE INDEX CONCURRENTLY`` on PostgreSQL (span writes go on
    while it builds) and nothing elsewhere; the model state gets the index either way."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run in a transaction.
    atomic = False

    dependencies = [
        ("telemetry", "0009_finding_remedy"),
    ]

    operations = [
        AddIndexOnPostgreSQL(
            model_name="span",
            index=GinIndex(fields=["attributes"], name="telemetry_span_attributes", opclasses=["jsonb_path_ops"]),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["status_code", "-start"], name="telemetry_trace_status_code"),
        ),
    ]
