"""Database client metrics from the execute wrapper, on the real PostgreSQL."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections

from telemetry.core.context import suppressed

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_statement_is_counted_by_system_operation_and_table(samples):
    count = samples.snapshot("db_client_operation_count_total", {
        "db_system": "postgresql", "db_operation_name": "select", "db_collection_name": "auth_group"})
    inserts = samples.snapshot("db_client_operation_count_total", {
        "db_system": "postgresql", "db_operation_name": "insert", "db_collection_name": "auth_group"})
    Group.objects.create(name="a")
    list(Group.objects.all())
    list(Group.objects.filter(name="a"))
    assert count() == 2
    assert inserts() == 1


def test_durations_carry_the_organization_outside_requests_as_empty(samples):
    delta = samples.snapshot("db_client_operation_duration_seconds_count", {
        "db_system": "postgresql", "db_operation_name": "select", "db_collection_name": "auth_group",
        "organization_id": ""})
    list(Group.objects.all())
    assert delta() == 1


def test_returned_rows_are_observed(samples):
    Group.objects.bulk_create([Group(name=f"g{i}") for i in range(7)])
    rows = samples.snapshot("db_client_response_returned_rows_sum",
                            {"db_system": "postgresql", "db_operation_name": "select"})
    assert len(list(Group.objects.all())) == 7
    assert rows() == 7


def test_failed_statements_propagate_unchanged_and_are_counted(samples):
    from django.db import DatabaseError

    delta = samples.snapshot("db_client_operation_count_total", {
        "db_system": "postgresql", "db_operation_name": "select", "db_collection_name": "no_such_table"})
    with pytest.raises(DatabaseError):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
    assert delta() == 1


def test_connections_opened_later_in_other_threads_are_instrumented(samples):
    delta = samples.snapshot("db_client_operation_count_total", {
        "db_system": "postgresql", "db_operation_name": "select", "db_collection_name": "auth_group"})

    def work():
        list(Group.objects.all())
        connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert delta() == 1


def test_suppressed_statements_are_not_recorded(samples):
    delta = samples.snapshot("db_client_operation_count_total", {
        "db_system": "postgresql", "db_operation_name": "select", "db_collection_name": "auth_group"})
    with suppressed():
        list(Group.objects.all())
    assert delta() == 0


def test_new_connections_are_timed(samples):
    delta = samples.snapshot("db_client_connection_wait_time_seconds_count", {"db_system": "postgresql"})
    connection.close()
    connection.ensure_connection()
    assert delta() == 1


def test_connection_count_gauge_shows_open_connections(samples):
    connection.ensure_connection()
    from telemetry import api

    api.flush(sample=True)
    assert samples.value("db_client_connection_count",
                         {"db_client_connection_pool_name": "default", "db_system": "postgresql"}) >= 1
