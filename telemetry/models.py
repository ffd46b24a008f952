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
