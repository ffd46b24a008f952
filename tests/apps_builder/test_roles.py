"""The role matrix: each role x each action x own / other organization. Rejected
requests change nothing stored."""

import pytest

from apps_builder.models import App, AppVersion, DataQuery, DataSource, Invitation, Membership

pytestmark = pytest.mark.django_db

ROLES = ("viewer", "builder", "admin")
# action -> lowest role allowed in the own organization
ACTIONS = {
    "list_apps": "viewer", "retrieve_app": "viewer", "view_app": "viewer", "run_query": "viewer",
    "list_versions": "viewer", "list_sources": "viewer", "list_members": "viewer",
    "update_app": "builder", "delete_app": "builder", "create_version": "builder", "release": "builder",
    "create_query": "builder", "update_query": "builder", "create_app": "builder",
    "create_source": "admin", "update_source": "admin", "delete_source": "admin", "test_source": "admin",
    "invite_member": "admin",
}
RANK = {role: index for index, role in enumerate(ROLES)}


def perform(client, action, target):
    app, source, query, org = target["app"], target["source"], target["query"], target["org"]
    if action == "list_apps":
        return client.get(f"/api/apps/?organization={org.pk}")
    if action == "retrieve_app":
        return client.get(f"/api/apps/{app.slug}/")
    if action == "view_app":
        return client.get(f"/api/apps/{app.slug}/view")
    if action == "run_query":
        return client.post(f"/api/data-queries/{query.pk}/run", {"parameters": {"city": "Oslo"}}, format="json")
    if action == "list_versions":
        return client.get(f"/api/apps/{app.slug}/versions/")
    if action == "list_sources":
        return client.get(f"/api/data-sources/{source.pk}/")
    if action == "list_members":
        return client.get(f"/api/organizations/{org.pk}/members/")
    if action == "update_app":
        return client.patch(f"/api/apps/{app.slug}/", {"name": "renamed"}, format="json")
    if action == "delete_app":
        return client.delete(f"/api/apps/{app.slug}/")
    if action == "create_version":
        return client.post(f"/api/apps/{app.slug}/versions/", {"name": "v2"}, format="json")
    if action == "release":
        return client.post(f"/api/apps/{app.slug}/release", {"version": "v1"}, format="json")
    if action == "create_query":
        return client.post("/api/data-queries/", {"app": app.slug, "data_source": source.pk, "name": "new",
                                                  "options": {"query": "SELECT 1"}}, format="json")
    if action == "update_query":
        return client.patch(f"/api/data-queries/{query.pk}/", {"name": "renamed"}, format="json")
    if action == "create_app":
        return client.post("/api/apps/", {"organization": org.pk, "name": "New app"}, format="json")
    if action == "create_source":
        return client.post("/api/data-sources/", {"organization": org.pk, "kind": "sqlite", "name": "New",
                                                  "options": {"path": "/tmp/x.sqlite3"}}, format="json")
    if action == "update_source":
        return client.patch(f"/api/data-sources/{source.pk}/", {"name": "renamed"}, format="json")
    if action == "delete_source":
        return client.delete(f"/api/data-sources/{target['spare'].pk}/")
    if action == "test_source":
        return client.post(f"/api/data-sources/{source.pk}/test")
    if action == "invite_member":
        return client.post(f"/api/organizations/{org.pk}/invitations/", {"username": "newcomer", "role": "viewer"},
                           format="json")
    raise AssertionError(action)


def snapshot():
    return (
        sorted(App.objects.values_list("slug", "name", "released_version_id")),
        AppVersion.objects.count(),
        sorted(DataQuery.objects.values_list("name", flat=True)),
        sorted(DataSource.objects.values_list("name", flat=True)),
        Membership.objects.count(),
        Invitation.objects.count(),
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("scope", ["own", "other"])
def test_role_matrix(world, api_client_for, role, action, scope):
    client = api_client_for(world["users"][role])
    before = snapshot()
    response = perform(client, action, world[scope])
    allowed = scope == "own" and RANK[role] >= RANK[ACTIONS[action]]
    if scope == "other":
        # Another organization's objects do not exist for the caller; creations there
        # name an organization the caller does not have (400 with the field).
        if action in ("create_app", "create_source", "create_query"):
            assert response.status_code == 400, response.content
        elif action == "list_apps":
            assert response.status_code == 200 and response.json()["results"] == []
        else:
            assert response.status_code == 404, response.content
    elif allowed:
        assert response.status_code in (200, 201, 204), (response.status_code, response.content)
    else:
        assert response.status_code == 403, response.content
    if not allowed:
        assert snapshot() == before


def test_list_endpoints_show_only_own_organizations(world, api_client_for):
    client = api_client_for(world["users"]["viewer"])
    slugs = [app["slug"] for app in client.get("/api/apps/").json()["results"]]
    assert slugs == ["own-app"]
    organizations = client.get("/api/organizations/").json()["results"]
    assert [(item["slug"], item["role"]) for item in organizations] == [("acme", "viewer")]
    sources = client.get("/api/data-sources/").json()["results"]
    assert sorted(item["id"] for item in sources) == sorted([world["own"]["source"].pk, world["own"]["spare"].pk])


def test_unauthenticated_requests_are_refused(client, world):
    assert client.get("/api/apps/").status_code in (401, 403)
