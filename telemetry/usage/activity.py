"""Active users: request handlers note who was seen; the sampler writes it in one
bulk upsert per interval and counts the window with an indexed query."""

import threading
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from telemetry import conf
from telemetry.core import labels

_pending = {}
_reported = set()
_lock = threading.Lock()
#: The last count per organization and the batch of the sample that made it.
_counted = {"batch": None, "per_organization": {}}


def seen(user_id, organization_id):
    """A request of ``user_id``; one that names no organization keeps the known one."""
    if organization_id is None or organization_id == "":
        previous = _pending.get(user_id)
        organization = previous[0] if previous else ""
    else:
        organization = str(organization_id)
    _pending[user_id] = (organization, timezone.now())


def write_and_count(batch):
    from telemetry.core.context import suppressed
    from telemetry.metrics import families
    from telemetry.models import UserActivity
    from telemetry.core.routers import telemetry_alias

    with _lock:
        pending = dict(_pending)
        _pending.clear()
    alias = telemetry_alias()
    with suppressed():
        # Requests that name no organization (a listing, say) refresh ``last_seen`` only:
        # the stored organization stays, so the user keeps counting for it.
        for with_organization, update_fields in ((True, ["organization_id", "last_seen"]), (False, ["last_seen"])):
            rows = [UserActivity(user_id=user_id, organization_id=org, last_seen=last_seen)
                    for user_id, (org, last_seen) in pending.items() if bool(org) == with_organization]
            if rows:
                UserActivity.objects.using(alias).bulk_create(
                    rows, update_conflicts=True, unique_fields=["user_id"], update_fields=update_fields,
                )
        since = timezone.now() - timedelta(seconds=conf.get("ACTIVE_USER_WINDOW_SECONDS"))
        per_organization = dict(
            UserActivity.objects.using(alias).filter(last_seen__gte=since)
            .values_list("organization_id").annotate(count=Count("id")).order_by()
        )
    _counted.update(batch=batch, per_organization=per_organization)
    gauge = families().business.active_users
    counts = {}
    for org, count in per_organization.items():
        if org:
            label = labels.organization(org)
            counts[label] = counts.get(label, 0) + count
    # Organizations whose users all went idle drop to zero rather than keep their last value.
    for label in _reported - counts.keys():
        counts[label] = 0
    _reported.update(counts)
    for label, count in counts.items():
        batch.set(gauge, (label, "organization"), count)
    batch.set(gauge, ("", "platform"), sum(per_organization.values()))


def counts_of(batch):
    """Active users per organization id as counted in ``batch``'s sample (uncapped),
    or nothing when this sample did not count them."""
    if _counted["batch"] is not batch:
        return {}
    return {org: count for org, count in _counted["per_organization"].items() if org and count > 0}
