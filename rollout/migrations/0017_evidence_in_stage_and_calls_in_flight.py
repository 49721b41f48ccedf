"""A guard sample says when it was judged (a plan's latency gate counts only its stage's); a function call count
says how many of the application's own calls were in flight while it was read (retirement readiness)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0016_recorded_calls"),
    ]

    operations = [
        migrations.AddField(
            model_name="guardsample",
            name="judged_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="functioncallcount",
            name="own_in_flight",
            field=models.BigIntegerField(default=0),
        ),
    ]
