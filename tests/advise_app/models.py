from django.db import models


class Order(models.Model):
    """Orders filtered by customer and status (no index on either), with a unique
    reference (an index behind a constraint) and a declared index on ``note``."""

    customer_id = models.IntegerField()
    status = models.CharField(max_length=16)
    email = models.CharField(max_length=200)
    reference = models.CharField(max_length=32, unique=True)
    note = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["note"], name="advise_order_note_idx")]
