from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0004_safety_net"),
    ]

    operations = [
        migrations.AlterField(
            model_name="queryflag",
            name="testing",
            field=models.BooleanField(default=False, editable=False, help_text="Not used: the router never reads it."),
        ),
    ]
