"""``manage.py telemetry_advise``: the proven index advice of a period, as migrations.

Lists each advice (``telemetry.queries.advise.proven_advice``): table, keys, the statements
it serves and their share of database time, planner cost before and after, index size and
the write cost of one more index. ``--write-migrations`` writes, per app whose model owns an
advised table, one migration that adds the indexes with ``AddIndexConcurrently`` (``atomic =
False``), named, numbered and placed as ``makemigrations`` would, and prints the
``Meta.indexes`` entries the models need so that ``makemigrations`` stays quiet afterwards.
A table no model owns (or a model of an installed package) gets its SQL only.
``--include-drops`` adds ``RemoveIndexConcurrently`` for unused indexes that are one of a
model's ``Meta.indexes``, once the migration that created them is as old as the observation
window. ``--check`` exits 1 when some proven advice is not covered by an
existing index of the live catalog (for CI), 0 otherwise.
"""

import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from django.contrib.postgres.indexes import OpClass
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections, models
from django.db.backends.utils import names_digest, split_identifier  # type: ignore[attr-defined]  # not in the stubs
from django.db.migrations import Migration
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import AddIndex, CreateModel, RenameIndex
from django.db.migrations.operations.base import Operation
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter
from django.db.models.functions import Lower, Trunc, Upper
from django.utils import timezone

from telemetry import conf
from telemetry.queries import advise, reports, schema

FUNCTIONS = {"lower": Lower, "upper": Upper}
_PACKAGE_DIRECTORIES = {Path(sysconfig.get_paths()[name]).resolve() for name in ("purelib", "platlib")}


@dataclass
class IndexChange:
    """One operation of the migration to write for an app."""

    app_label: str
    operation: Operation


class Command(BaseCommand):
    help = "List the proven index advice of a period; write the migrations that add the indexes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=float, default=24.0, help="the period, ending this hour (default 24)")
        parser.add_argument("--write-migrations", action="store_true",
                            help="write one migration per affected app (AddIndexConcurrently, non-atomic)")
        parser.add_argument("--include-drops", action="store_true",
                            help="with --write-migrations: also remove unused indexes declared in Meta.indexes")
        parser.add_argument("--check", action="store_true",
                            help="exit 1 when proven advice exists that no existing index covers")

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = reports.period(options["hours"])
        stats = {row["fingerprint_id"]: row for row in reports.aggregate(start, end)}
        advice_list = advise.proven_advice(start, end, stats)
        new = [advice for advice in advice_list if advice.covered_by is None]
        self.stdout.write(f"Proven index advice {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC: "
                          f"{len(new)} to add, {len(advice_list) - len(new)} already covered by an index")
        loader = MigrationLoader(None, ignore_no_migrations=True)
        state = loader.project_state()
        changes: list[IndexChange] = []
        for number, advice in enumerate(advice_list, start=1):
            self._describe(number, advice)
            if advice.covered_by:
                continue
            change = self._index_change(advice, loader, state)
            if change is not None:
                changes.append(change)
        changes.extend(self._unused(loader, options["include_drops"]))
        if options["write_migrations"]:
            self._write(changes, loader, state)
        if options["check"] and new:
            self.stderr.write(f"{len(new)} proven index advice not applied: "
                              + "; ".join(advice.label for advice in new))
            raise SystemExit(1)

    # ------------------------------------------------------------------ listing

    def _describe(self, number: int, advice: advise.IndexAdvice) -> None:
        write = self.stdout.write
        proof = "proven by HypoPG" if advice.proven else "unproven"
        write(f"\n{number}. [{advice.alias}] {advice.label}  ({advice.shape}, {proof})")
        if advice.covered_by:
            write(f"   already covered by the index {advice.covered_by}")
        write(f"   serves {len(advice.statements)} statement(s), {advice.share_of_db_time:.1%} of database time; "
              f"cost {_cost(advice.cost_before)} -> {_cost(advice.cost_after)}"
              + (f" (-{advice.gain:.0%})" if advice.gain is not None else "")
              + f"; index {_size(advice.index_bytes)} on {advice.table_rows:,} rows")
        if advice.write_cost is not None:
            write(f"   write cost: every write to {advice.table} also updates this index: "
                  f"{advice.write_cost.statements_per_hour:g} statements/h ({advice.write_cost.rows_per_hour:g} "
                  f"rows/h) of {advice.write_cost.write_fingerprints} write fingerprint(s)")
        if advice.consolidates:
            write(f"   one index instead of: {', '.join(advice.consolidates)}")
        for item in advice.statements:
            write(f"   - {item.share_of_db_time:.1%}, {item.calls} calls: {item.fingerprint[:160]}")
            write(f"     cost {_cost(item.cost_before)} -> {_cost(item.cost_after)} proven with {item.proven_with}"
                  + (f"; call site {item.call_site}" if item.call_site else "")
                  + (f"; trace {item.trace_id}" if item.trace_id else ""))
        write(f"   SQL: {advice.create_statement}")

    def _index_change(self, advice: advise.IndexAdvice, loader: MigrationLoader,
                      state: ProjectState) -> IndexChange | None:
        model = schema.model_for_table(advice.table)
        reason = _why_no_migration(model, loader)
        if model is None or reason:
            self.stdout.write(f"   no migration: {reason or 'no Django model owns this table'}")
            return None
        index = _index_for(advice, model)
        if isinstance(index, str):
            self.stdout.write(f"   no migration: {index}")
            return None
        meta_line, meta_imports = MigrationWriter.serialize(index)
        self.stdout.write(f"   model {model._meta.label}: add to Meta.indexes ({'; '.join(sorted(meta_imports))})"
                          f"\n       {meta_line},")
        migrated = state.models.get((model._meta.app_label, model._meta.model_name))
        if migrated is not None and index.name in {item.name for item in migrated.options.get("indexes", ())}:
            self.stdout.write(f"   {index.name} is in a migration already: run migrate")
            return None
        return IndexChange(model._meta.app_label, AddIndexConcurrently(model.__name__.lower(), index))

    def _unused(self, loader: MigrationLoader, include_drops: bool) -> list[IndexChange]:
        """Lists the unused indexes (with their observation window); the drops of those
        declared in a model's ``Meta.indexes`` when ``include_drops``, unless the migration
        that created one was applied less than the window ago."""
        drops = []
        for alias in advise.postgresql_aliases():
            try:
                found = advise.unused_indexes(alias, conf.get("MISSING_INDEX_MIN_ROWS"))
            except Exception as exc:  # noqa: BLE001 - one unreachable database, the others still listed
                self.stderr.write(f"[{alias}] unused indexes not read: {exc}")
                continue
            window = found.window
            if not window.long_enough:
                self.stdout.write(f"\n[{alias}] unused indexes: statistics only {window.days:.1f} days old "
                                  f"(since {window.since:%Y-%m-%d %H:%M}), {window.min_days:g} needed")
                continue
            for index in found.indexes:
                self.stdout.write(f"\n[{alias}] unused index {index['index']} on {index['table']} "
                                  f"({_size(index['index_bytes'])}), never scanned in {window.days:.1f} days: "
                                  f"{index['drop_statement']}")
                change = self._drop_change(alias, index["table"], index["index"], window, loader)
                if change is not None and include_drops:
                    drops.append(change)
        return drops

    def _drop_change(self, alias: str, table: str, index_name: str, window: advise.ObservationWindow,
                     loader: MigrationLoader) -> IndexChange | None:
        """The removal of an unused index one of a model's ``Meta.indexes`` declares, once
        it has existed for the whole window (scans are counted only since its migration)."""
        model = schema.model_for_table(table)
        if model is None or _why_no_migration(model, loader) or not any(
                item.name == index_name for item in model._meta.indexes):
            return None
        created = _created_by(loader, model._meta.app_label, index_name)
        applied = MigrationRecorder(connections[alias]).applied_migrations().get(created) if created else None
        if created is not None and applied is not None and applied.applied > window.since:
            days = (timezone.now() - applied.applied).total_seconds() / 86400.0
            if days < window.min_days:
                self.stdout.write(f"   created by {created[1]} {days:.1f} days ago: no drop before "
                                  f"{window.min_days:g} days")
                return None
        self.stdout.write(f"   model {model._meta.label}: remove {index_name} from Meta.indexes")
        return IndexChange(model._meta.app_label, RemoveIndexConcurrently(model.__name__.lower(), index_name))

    # ------------------------------------------------------------------ writing

    def _write(self, changes: list[IndexChange], loader: MigrationLoader, state: ProjectState) -> None:
        operations: dict[str, list[Operation]] = {}
        for change in changes:
            operations.setdefault(change.app_label, []).append(change.operation)
        if not operations:
            self.stdout.write("\nno migration to write")
            return
        # A Migration takes its operations from its class, as a migration file declares them.
        by_app = {app_label: [type("Migration", (Migration,), {"operations": app_operations})(
                      "telemetry_advise", app_label)]
                  for app_label, app_operations in operations.items()}
        # Numbered after, and depending on, the app's leaf migration, named from its operations.
        autodetector = MigrationAutodetector(state, state)
        for app_label, [migration] in autodetector.arrange_for_graph(by_app, loader.graph).items():
            writer = MigrationWriter(migration)
            text = writer.as_string()
            header = "class Migration(migrations.Migration):\n"
            # The writer has no place for ``atomic``; concurrent index builds need it off.
            text = text.replace(header, header + "\n    atomic = False\n", 1)
            Path(writer.path).write_text(text)
            self.stdout.write(f"\nwrote {writer.path} ({len(migration.operations)} operation(s), "
                              f"app {app_label})")


def _why_no_migration(model: type[models.Model] | None, loader: MigrationLoader) -> str:
    """Why no migration can be written for ``model`` (empty when one can)."""
    if model is None:
        return "no Django model owns this table"
    meta = model._meta
    if not meta.managed:
        return f"{meta.label} is not managed by Django"
    app_path = Path(apps.get_app_config(meta.app_label).path).resolve()
    if any(app_path.is_relative_to(directory) for directory in _PACKAGE_DIRECTORIES):
        return f"{meta.app_label} is an installed package: add the index in a migration of one of your apps"
    leaves = [name for app, name in loader.graph.leaf_nodes() if app == meta.app_label]
    if meta.app_label in loader.unmigrated_apps or not leaves:
        return f"{meta.app_label} has no migrations"
    if len(leaves) > 1:
        return f"{meta.app_label} has conflicting migrations: run makemigrations --merge first"
    return ""


def _created_by(loader: MigrationLoader, app_label: str, index_name: str) -> tuple[str, str] | None:
    """The migration of ``app_label`` that creates (or renames to) the index ``index_name``."""
    for key, migration in loader.disk_migrations.items():
        if key[0] != app_label:
            continue
        for operation in migration.operations:
            if isinstance(operation, AddIndex):
                names = {operation.index.name}
            elif isinstance(operation, CreateModel):
                names = {index.name for index in operation.options.get("indexes", ())}
            elif isinstance(operation, RenameIndex):
                names = {operation.new_name}
            else:
                continue
            if index_name in names:
                return key
    return None


def _index_for(advice: advise.IndexAdvice, model: type[models.Model]) -> models.Index | str:
    """The ``models.Index`` of an advice on ``model``, or why there is none."""
    fields = []
    for key in advice.keys:
        found = schema.field_for_column(model, key.column)
        if found is None:
            return f"{key.column} is not a field of {model._meta.label}"
        fields.append(found)
    condition = None
    if advice.condition is not None:
        condition_field = schema.field_for_column(model, advice.condition.column)
        if condition_field is None:
            return f"{advice.condition.column} is not a field of {model._meta.label}"
        condition = models.Q(**{condition_field.attname: advice.condition.value})
    ordered = [("-" if key.descending else "") + found.name for key, found in zip(advice.keys, fields, strict=True)]
    # Django names an index from its table and fields; what else tells two indexes on the
    # same fields apart (functions, operator classes, condition) goes into the digest.
    extra = [key.label for key in advice.keys if key.function or key.opclass]
    if advice.condition is not None:
        extra.append(advice.condition.label)
    name = _index_name(model, ordered, extra)
    if all(key.function is None for key in advice.keys):
        opclasses = [key.opclass or "" for key in advice.keys] if any(key.opclass for key in advice.keys) else []
        return models.Index(fields=ordered, name=name, opclasses=opclasses, condition=condition)
    expressions = []
    for key, found in zip(advice.keys, fields, strict=True):
        expression: Any = models.F(found.name)
        if key.function == "date_trunc":
            expression = Trunc(expression, key.function_args[0] if key.function_args else "day")
        elif key.function in FUNCTIONS:
            expression = FUNCTIONS[key.function](expression)
        elif key.function:
            return f"no Django expression for {key.function}(): use the SQL"
        if key.opclass:
            expression = OpClass(expression, name=key.opclass)
        expressions.append(expression.desc() if key.descending else expression)
    return models.Index(*expressions, name=name, condition=condition)


def _index_name(model: type[models.Model], ordered_fields: list[str], extra: list[str]) -> str:
    """The name ``Index.set_name_with_model`` gives these fields, its digest also covering
    ``extra`` when there is any."""
    probe = models.Index(fields=ordered_fields)
    probe.set_name_with_model(model)
    if not extra:
        return probe.name
    _, table_name = split_identifier(model._meta.db_table)
    prefix = probe.name.rsplit("_", 2)[0]
    return f"{prefix}_{names_digest(table_name, *ordered_fields, *extra, probe.suffix, length=6)}_{probe.suffix}"


def _cost(value: float | None) -> str:
    return "?" if value is None else f"{value:,.1f}"


def _size(value: int | None) -> str:
    if value is None:
        return "size unknown"
    if value < 1024 * 1024:
        return f"{value / 1024:,.1f} kB"
    return f"{value / 1024 / 1024:,.1f} MB"
