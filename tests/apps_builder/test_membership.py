"""Membership: people join an organization by accepting an invitation addressed to them;
staff and superusers never join through a tenant; and an unknown object and another
organization's object get the same answer, so nothing tells which exist."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps_builder import tokens
from apps_builder.models import Invitation, Membership

pytestmark = pytest.mark.django_db

UNKNOWN_ID = 987654321


@pytest.fixture
def admin(world, api_client_for):
    return api_client_for(world["users"]["admin"])


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")


def invite(admin, world, **invitee):
    response = admin.post(f"/api/organizations/{world['own']['org'].pk}/invitations/",
                          {"role": "builder", **invitee}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def accept(client, token):
    return client.post("/api/invitations/accept", {"token": token}, format="json")


def test_an_admin_cannot_add_anyone_directly(world, admin, superuser, make_member):
    outsider = make_member(world["other"]["org"], "admin")
    members = f"/api/organizations/{world['own']['org'].pk}/members/"
    for username in (superuser.username, outsider.username):
        response = admin.post(members, {"username": username, "role": "admin"}, format="json")
        assert response.status_code == 405
    assert not Membership.objects.filter(organization=world["own"]["org"], user__in=[superuser, outsider]).exists()


def test_the_invitee_accepts_and_joins_with_the_role(world, admin, make_member, api_client_for):
    newcomer = make_member(world["other"]["org"], "viewer")
    invitation = invite(admin, world, username=newcomer.username)
    assert invitation["token"] and invitation["role"] == "builder"
    # Invited is not joined: a user of another organization is not added by the invitation.
    assert not Membership.objects.filter(organization=world["own"]["org"], user=newcomer).exists()
    listed = admin.get(f"/api/organizations/{world['own']['org'].pk}/invitations/").json()["results"]
    assert [row["username"] for row in listed] == [newcomer.username] and listed[0]["token"] is None

    client = api_client_for(newcomer)
    response = accept(client, invitation["token"])
    assert response.status_code == 200, response.content
    assert response.json()["slug"] == world["own"]["org"].slug and response.json()["role"] == "builder"
    assert Membership.objects.get(organization=world["own"]["org"], user=newcomer).role == "builder"
    assert accept(client, invitation["token"]).status_code == 404  # used once
    assert admin.get(f"/api/organizations/{world['own']['org'].pk}/invitations/").json()["results"] == []


def test_an_invitation_by_email_matches_regardless_of_case(world, admin, django_user_model, api_client_for):
    person = django_user_model.objects.create_user("person", "Person@Example.com", "pw-person")
    invitation = invite(admin, world, email="person@example.COM")
    assert accept(api_client_for(person), invitation["token"]).status_code == 200
    assert Membership.objects.filter(organization=world["own"]["org"], user=person).exists()


def test_the_superuser_and_staff_never_join_through_an_invitation(world, admin, superuser, django_user_model,
                                                                  api_client_for):
    staff = django_user_model.objects.create_user("operator", "ops@example.com", "pw-ops", is_staff=True)
    for account in (superuser, staff):
        invitation = invite(admin, world, username=account.username)  # accepted: nothing is looked up
        response = accept(api_client_for(account), invitation["token"])
        assert response.status_code == 404
        assert response.json() == {"detail": "No such invitation."}
    assert not Membership.objects.filter(user__in=[superuser, staff]).exists()


def test_only_the_invitee_can_accept_and_only_before_expiry(world, admin, make_member, api_client_for):
    invitee = make_member(world["other"]["org"], "viewer")
    invitation = invite(admin, world, username=invitee.username)
    someone_else = api_client_for(make_member(world["other"]["org"], "admin"))
    assert accept(someone_else, invitation["token"]).status_code == 404
    assert accept(APIClient(), invitation["token"]).status_code == 401
    Invitation.objects.filter(pk=invitation["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = accept(api_client_for(invitee), invitation["token"])
    assert response.status_code == 400 and "expired" in response.json()["token"][0]
    assert not Membership.objects.filter(organization=world["own"]["org"], user=invitee).exists()


def test_an_invitation_names_someone_and_an_admin_can_revoke_it(world, admin, make_member, api_client_for):
    response = admin.post(f"/api/organizations/{world['own']['org'].pk}/invitations/", {"role": "viewer"},
                          format="json")
    assert response.status_code == 400
    invitee = make_member(world["other"]["org"], "viewer")
    invitation = invite(admin, world, username=invitee.username)
    assert admin.delete(f"/api/organizations/{world['own']['org'].pk}/invitations/{invitation['id']}/"
                        ).status_code == 204
    assert accept(api_client_for(invitee), invitation["token"]).status_code == 404


def test_the_invitation_token_is_stored_as_a_digest(world, admin):
    invitation = invite(admin, world, username="someone")
    stored = Invitation.objects.get(pk=invitation["id"])
    assert stored.digest != invitation["token"] and invitation["token"] not in str(vars(stored))


def same_answer(first, second, value_first="", value_second=""):
    """Status and body are identical once the id or slug asked for is masked."""
    def masked(response):
        text = response.content.decode()
        for value in (value_first, value_second):
            if value:
                text = re.sub(rf"\b{re.escape(str(value))}\b", "<asked>", text)
        return response.status_code, text

    assert masked(first) == masked(second), (first.content, second.content)
    return first.status_code


def call(client, method, path):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, {"role": "viewer", "username": "x"}, format="json")


def test_unknown_and_forbidden_objects_get_the_same_404(world, admin, make_member):
    other, own_org = world["other"], world["own"]["org"]
    outsider_membership = Membership.objects.get(user=make_member(other["org"], "viewer"))
    foreign_token = tokens.generate_key()
    foreign_invitation = Invitation.objects.create(organization=other["org"], username="nobody-here",
                                                   digest=tokens.digest_of(foreign_token))
    pairs = [
        (f"/api/apps/{other['app'].slug}/", "/api/apps/no-such-app/", "get"),
        (f"/api/apps/{other['app'].slug}/view", "/api/apps/no-such-app/view", "get"),
        (f"/api/data-sources/{other['source'].pk}/", f"/api/data-sources/{UNKNOWN_ID}/", "get"),
        (f"/api/data-queries/{other['query'].pk}/", f"/api/data-queries/{UNKNOWN_ID}/", "get"),
        (f"/api/data-queries/{other['query'].pk}/run", f"/api/data-queries/{UNKNOWN_ID}/run", "post"),
        (f"/api/organizations/{other['org'].pk}/", f"/api/organizations/{UNKNOWN_ID}/", "get"),
        (f"/api/organizations/{other['org'].pk}/members/", f"/api/organizations/{UNKNOWN_ID}/members/", "get"),
        (f"/api/organizations/{other['org'].pk}/invitations/", f"/api/organizations/{UNKNOWN_ID}/invitations/",
         "post"),
        (f"/api/organizations/{own_org.pk}/members/{outsider_membership.pk}/",
         f"/api/organizations/{own_org.pk}/members/{UNKNOWN_ID}/", "patch"),
        (f"/api/organizations/{own_org.pk}/invitations/{foreign_invitation.pk}/",
         f"/api/organizations/{own_org.pk}/invitations/{UNKNOWN_ID}/", "delete"),
    ]
    for forbidden, unknown, method in pairs:
        status = same_answer(call(admin, method, forbidden), call(admin, method, unknown))
        assert status == 404, (forbidden, status)
    assert same_answer(accept(admin, foreign_token), accept(admin, "0" * 40)) == 404


def test_unknown_and_forbidden_references_in_bodies_get_the_same_400(world, admin, superuser):
    other, own = world["other"], world["own"]
    creations = [
        ("/api/apps/", {"name": "x"}, "organization", other["org"].pk, UNKNOWN_ID),
        ("/api/data-sources/", {"name": "x", "kind": "sqlite", "options": {}}, "organization", other["org"].pk,
         UNKNOWN_ID),
        ("/api/data-queries/", {"name": "x", "data_source": own["source"].pk}, "app", other["app"].slug,
         "no-such-app"),
        ("/api/data-queries/", {"name": "x", "app": own["app"].slug}, "data_source", other["source"].pk,
         UNKNOWN_ID),
        ("/api/apps/from-template", {"name": "x", "template": "crm"}, "organization", other["org"].pk, UNKNOWN_ID),
    ]
    for path, body, field, forbidden, unknown in creations:
        status = same_answer(admin.post(path, {**body, field: forbidden}, format="json"),
                             admin.post(path, {**body, field: unknown}, format="json"), forbidden, unknown)
        assert status == 400, path
    # A membership's user is never looked up: an existing username and an unknown one alike.
    membership = Membership.objects.filter(organization=own["org"]).first()
    path = f"/api/organizations/{own['org'].pk}/members/{membership.pk}/"
    assert same_answer(admin.patch(path, {"username": superuser.username}, format="json"),
                       admin.patch(path, {"username": "no-such-user"}, format="json"),
                       superuser.username, "no-such-user") == 400
