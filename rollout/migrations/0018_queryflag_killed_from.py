"""A killed flag remembers what `everyone` was before the kill: the kill does not change the lifecycle stage."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0017_evidence_in_stage_and_calls_in_flight"),
    ]

    operations = [
        migrations.AddField(
            model_name="queryflag",
            name="killed_from",
            field=models.BooleanField(blank=True, editable=False, null=True),
        ),
    ]
