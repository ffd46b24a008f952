"""Active users: request handlers note who was seen; the sampler writes it in one
bulk upsert per interval and counts the window with an indexed query."""

import threading
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import connections
from django.utils import timezone

from telemetry import conf
from telemetry.core import labels
from telemetry.core.context import suppressed
from telemetry.core.recorder import Batch
from telemetry.core.routers import telemetry_alias
from telemetry.metrics import families
from telemetry.models import UserActivity


@lru_cache(maxsize=8)
def _window_count(alias: str) -> str:
    """Users seen since a time (the parameter), per organization id."""
    quote = connections[alias].ops.quote_name
    meta = UserActivity._meta
    organization = quote(meta.get_field("organization_id").column)
    last_seen = quote(meta.get_field("last_seen").column)
    return (f"SELECT {organization}, COUNT(*) FROM {quote(meta.db_table)} "
            f"WHERE {last_seen} >= %s GROUP BY {organization}")


class ActiveUsers:
    """Who was seen since the last sample, and what the last sample counted."""

    def __init__(self) -> None:
        #: user id -> (organization id or "", last seen)
        self._seen: dict[Any, tuple[str, datetime]] = {}
        #: Organization labels given a value by an earlier sample (set to 0 once idle).
        self._reported: set[str] = set()
        #: The last count per organization and the batch of the sample that made it.
        self._counted_batch: Batch | None = None
        self._counted: dict[str, int] = {}
        self._lock = threading.Lock()

    def seen(self, user_id: object, organization_id: object) -> None:
        """A request of ``user_id``; one that names no organization keeps the known one."""
        if organization_id is None or organization_id == "":
            previous = self._seen.get(user_id)
            organization = previous[0] if previous else ""
        else:
            organization = str(organization_id)
        self._seen[user_id] = (organization, timezone.now())

    def write_and_count(self, batch: Batch) -> None:
        """The sampler's step: stores who was seen, counts the window per organization and
        sets ``active_users_current``."""
        with self._lock:
            pending, self._seen = self._seen, {}
        alias = telemetry_alias()
        with suppressed():
            # Requests that name no organization (a listing, say) refresh ``last_seen`` only:
            # the stored organization stays, so the user keeps counting for it.
            for with_organization, update_fields in ((True, ["organization_id", "last_seen"]),
                                                     (False, ["last_seen"])):
                rows = [UserActivity(user_id=user_id, organization_id=org, last_seen=last_seen)
                        for user_id, (org, last_seen) in pending.items() if bool(org) == with_organization]
                if rows:
                    UserActivity.objects.using(alias).bulk_create(
                        rows, update_conflicts=True, unique_fields=["user_id"], update_fields=update_fields,
                    )
            since = timezone.now() - timedelta(seconds=conf.get("ACTIVE_USER_WINDOW_SECONDS"))
            # Every sample runs this count: its text is built once (an ORM queryset compiled
            # per sample cost most of the sample's own work).
            connection = connections[alias]
            with connection.cursor() as cursor:
                cursor.execute(_window_count(alias), [connection.ops.adapt_datetimefield_value(since)])
                per_organization = dict(cursor.fetchall())
        self._counted_batch, self._counted = batch, per_organization
        gauge = families().business.active_users
        counts: dict[str, int] = {}
        for org, count in per_organization.items():
            if org:
                label = labels.organization(org)
                counts[label] = counts.get(label, 0) + count
        # Organizations whose users all went idle drop to zero rather than keep their last value.
        for label in self._reported - counts.keys():
            counts[label] = 0
        self._reported.update(counts)
        for label, count in counts.items():
            batch.set(gauge, (label, "organization"), count)
        batch.set(gauge, ("", "platform"), sum(per_organization.values()))

    def counts_of(self, batch: Batch) -> dict[str, int]:
        """Active users per organization id as counted in ``batch``'s sample (uncapped),
        or nothing when this sample did not count them."""
        if self._counted_batch is not batch:
            return {}
        return {org: count for org, count in self._counted.items() if org and count > 0}

    def reset(self) -> None:
        """Forgets who was seen and what was counted (``telemetry.testing.reset``)."""
        with self._lock:
            self._seen = {}
        self._reported.clear()
        self._counted_batch, self._counted = None, {}


#: This process's active users; the handlers and the sampler call the functions below.
active_users = ActiveUsers()
seen = active_users.seen
write_and_count = active_users.write_and_count
counts_of = active_users.counts_of
