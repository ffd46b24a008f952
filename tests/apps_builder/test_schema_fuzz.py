"""No input gives a 500: schemathesis generates requests for every operation of the
OpenAPI schema served at /api/schema/ (valid and invalid by the schema), anonymous and
as an organization admin, and sends them through the platform's real WSGI handler
(middleware, DRF, PostgreSQL). A fixed number of examples per operation, derandomized:
the same requests on every run.

Each example runs in a savepoint that is rolled back, so every request sees the same
objects (``world``) whatever an earlier one deleted or broke; half of the authenticated
examples aim their path parameters at those objects, so handlers run past their 404."""
import os
from collections import Counter

import pytest
import schemathesis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from apps_builder.models import ApiToken, Membership

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])

#: Per operation, caller and mode; SCHEMA_FUZZ_EXAMPLES raises it for a deeper local run.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "6"))
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, minus its closing of connections per request: the test's
    transaction must outlive every request (what Django's own test client does too)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
def known_path_parameters(world, path):
    """Path parameters naming existing objects of the admin's organization, by route."""
    own = world["own"]
    ids_by_prefix = {
        "/api/data-sources/": own["source"].pk,
        "/api/data-queries/": own["query"].pk,
        "/api/organizations/{organization_pk}/members/": Membership.objects.filter(organization=own["org"])
        .values_list("pk", flat=True).first(),
        "/api/organizations/": own["org"].pk,
    }
    known = {"slug": own["app"].slug, "organization_pk": own["org"].pk}
    for prefix, object_id in ids_by_prefix.items():
        if path.startswith(prefix):
            known["id"] = object_id
            break
    return known
def run_operation(operation, mode, headers, known, tally):
    """Sends up to ``EXAMPLES_PER_OPERATION`` generated requests; counts them and records
    any 5xx. An operation without parameters or body has no invalid requests to generate."""

    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), aim_at_known=st.booleans())
    def send(case, aim_at_known):
        if aim_at_known and headers:
            case.path_parameters.update({name: value for name, value in known.items() if name in case.path_parameters})
        cache.clear()  # the throttles' counters: generated traffic is not a client to slow down
        with transaction.atomic(), transaction.atomic(using="telemetry"):
            response = case.call(headers=headers)
            transaction.set_rollback(True)
            transaction.set_rollback(True, using="telemetry")
        tally["statuses"][("token" if headers else "anonymous", response.status_code)] += 1
        if response.status_code >= 500:
            tally["failures"].append(f"{response.status_code} {case.method} {case.formatted_path} "
                                     f"({mode.value}, {'token' if headers else 'anonymous'}): "
                                     f"{case.as_curl_command(headers=headers)}")

    try:
        send()
    except Unsatisfiable:
        assert mode is schemathesis.GenerationMode.NEGATIVE
def test_no_generated_request_gives_a_server_error(world, wsgi_app, capsys):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    token = ApiToken.objects.issue(world["users"]["admin"])
    tally = {"statuses": Counter(), "failures": []}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        known = known_path_parameters(world, operation.path)
        for headers in ({"Authorization": f"Token {token}"}, {}):
            for mode in MODES:
                run_operation(operation, mode, headers, known, tally)
    with capsys.disabled():
        print(f"\nschemathesis: {len(operations)} operations, {tally['statuses'].total()} requests, "
              f"{len(tally['failures'])} server errors; by caller and status: {sorted(tally['statuses'].items())}")
    assert tally["failures"] == []
