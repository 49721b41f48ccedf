"""Once the per-table cache generations and their triggers on the legacy tables.

They belong to rollout now (rollout/cache/triggers.py): installed after every
migrate, idempotently, on every table a registered query or
ROLLOUT_CACHE_READS names. Kept as a step so existing databases' history
holds; it does nothing either way (a reverse no longer drops what rollout owns).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0003_legacy_functions")]

    operations = [migrations.RunSQL(migrations.RunSQL.noop, migrations.RunSQL.noop)]
