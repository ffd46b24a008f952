from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0008_route_stat"),
    ]

    operations = [
        migrations.AddField(
            model_name="queryfinding",
            name="remedy",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="queryfinding",
            name="occurrences",
            field=models.IntegerField(default=1),
        ),
        migrations.AddField(
            model_name="queryfinding",
            name="occurrences_ms",
            field=models.FloatField(default=0.0),
        ),
    ]
