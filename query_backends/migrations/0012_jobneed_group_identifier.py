"""jobneed (pgroup_id, identifier): a person's work by group, narrowed to one kind of work in the index.

Most of a person's jobneed rows come through their groups (on `large`, 400–900 of a person's ~1,000), and
an external tour is one row in nine. With pgroup_id alone the twin fetched every group row from the heap
to keep the tours (716 heap blocks for 20 rows, 1.1 ms on `large`); with the identifier in the same index
the BitmapOr's group branch yields only the tours (99–148 blocks, 0.3–0.4 ms), and what a person's call reads
grows with that person's tours rather than with all their groups' work. `job_needs` uses it too, in place of
the single-column index. Generic plans match it: the identifier is an index condition, not a partial-index
predicate a parameter could not prove. The functions may use it as well; both sides read the same indexes.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0011_twin_plan_indexes")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS jobneed_group_identifier ON jobneed (pgroup_id, identifier)",
            "DROP INDEX IF EXISTS jobneed_group_identifier",
        ),
    ]
