"""Organization names from the platform's ORGANIZATION_NAME_RESOLVER on the trace list,
its organization filter, the waterfall and a finding's page (ids where a name is unknown)."""

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps_builder.models import Organization
from telemetry.models import QueryFinding, Trace

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


def test_pages_name_the_organizations_the_platform_knows(admin_client):
    cache.clear()  # the filter's choices are cached briefly
    acme = Organization.objects.create(name="Acme Rockets", slug="acme-rockets")
    for number, organization_id in enumerate((str(acme.pk), "ghost-org")):
        Trace.objects.create(trace_id=f"{number:032x}", root_name="GET /apps", route="/apps", status_code=200,
                             organization_id=organization_id, start=timezone.now(), duration_ms=12.0)
    page = admin_client.get("/admin/telemetry/trace/").content.decode()
    assert f"Acme Rockets ({acme.pk})</td>" in page and ">ghost-org</td>" in page
    assert f'?organization={acme.pk}">Acme Rockets ({acme.pk})</a></li>' in page

    waterfall = admin_client.get(f"/admin/telemetry/trace/{0:032x}/change/").content.decode()
    assert f"<b>organization</b>Acme Rockets ({acme.pk})</li>" in waterfall

    finding = QueryFinding.objects.create(code="n_plus_one", fingerprint_id="f" * 32, fingerprint="SELECT 1",
                                          alias="default", organization_id=str(acme.pk), created_at=timezone.now())
    detail = admin_client.get(f"/admin/telemetry/queryfinding/{finding.pk}/change/").content.decode()
    assert f"Acme Rockets ({acme.pk})" in detail
