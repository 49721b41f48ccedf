"""Once: the cache's triggers fire in every session_replication_role. rollout/cache/triggers.py installs them
so (ENABLE ALWAYS) now; kept as a step so existing databases' history holds."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0020_cache_generations")]

    operations = [migrations.RunSQL(migrations.RunSQL.noop, migrations.RunSQL.noop)]
