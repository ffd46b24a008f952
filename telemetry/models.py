"""What telemetry stores, on its own database alias (see ``routers.py``)."""

from django.db import models


class UserActivity(models.Model):
    """Last request time per user: the sliding window behind ``active_users_current``,
    so no scrape ever scans the session table."""

    user_id = models.BigIntegerField(unique=True)
    organization_id = models.CharField(max_length=64, blank=True, default="")
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name_plural = "user activity"


class ReleaseRouteStats(models.Model):
    """Latency per release, route and hour: what release comparison reads. Written by
    increment-upserts from every process; never one row per request."""

    release = models.CharField(max_length=64)
    route = models.CharField(max_length=255)
    hour = models.DateTimeField()
    count = models.BigIntegerField(db_default=0)
    total_seconds = models.FloatField(db_default=0.0)
    total_squares = models.FloatField(db_default=0.0)
    #: Apdex counts: requests within the target, and within four times the target.
    satisfied = models.BigIntegerField(db_default=0)
    tolerating = models.BigIntegerField(db_default=0)
    max_seconds = models.FloatField(db_default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["release", "route", "hour"], name="unique_release_route_hour")]
        indexes = [models.Index(fields=["release", "hour"])]
        verbose_name_plural = "release route stats"
