"""The cache's triggers fire in every session_replication_role: logical replication's apply, or a restore
run with `session_replication_role = replica`, writes the legacy tables too, and must retire cached answers."""

from django.db import migrations

# As in 0020 (a migration is frozen history: it keeps its own copy).
TABLES = (
    "typeassist",
    "bt",
    "people",
    "pgroup",
    "pgbelonging",
    "sitepeople",
    "asset",
    "questionset",
    "job",
    "jobneed",
    "jobneeddetails",
    "capability",
)


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0020_cache_generations")]

    operations = [
        migrations.RunSQL(
            [f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER query_cache_bump" for table in TABLES],
            [f"ALTER TABLE {table} ENABLE TRIGGER query_cache_bump" for table in TABLES],
        )
    ]
