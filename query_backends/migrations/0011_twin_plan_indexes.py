"""Indexes for the plans production runs: prepared statements, generic plans.

questionset (bu_id, parent_id): the twins bind the sentinel -1 as a parameter, so a
generic plan cannot know that parent_id = -1 matches most checklists; with single
column indexes it ANDs both bitmaps and reads the whole -1 bitmap on every call.
One index on both columns answers "the top-level checklists of this site" in one
scan, for the functions as well as the twins.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0010_sites_list_web_client_scoped")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS questionset_site_parent ON questionset (bu_id, parent_id)",
            "DROP INDEX IF EXISTS questionset_site_parent",
        ),
    ]
