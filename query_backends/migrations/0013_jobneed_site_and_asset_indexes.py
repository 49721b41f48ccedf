"""Indexes that keep what job_needs and schedule_for_adhoc read proportional to their answer, not to the table.

jobneed (people_id, bu_id), (cuser_id, bu_id), (muser_id, bu_id), (pgroup_id, bu_id): job_needs asks for one
person's rows at one site. With single-column indexes the generic plan ANDs the whole site's bitmap
(`jobneed_bu_id`: 1,217 entries on `medium`, 2,435 on `large`) into the person's BitmapOr — more than half
the statement, doubling with each step of data. With the site in each branch's index the BitmapOr yields only
the person's rows at that site (`Index Cond: people_id = $n AND bu_id = $m`) and no site bitmap is built.

jobneed (asset_id, qset_id): schedule_for_adhoc asks for the open plans of one asset with one checklist. The
generic plan ANDed the asset's bitmap with the checklist's (48 → 238 entries from `medium` to `large`); one
index scan on both columns reads the few rows of that pair.

The functions may use them too: both sides read the same indexes. The single-column foreign-key indexes stay
(Django's model state owns them). Effects and plans: docs/performance.md.
"""

from django.db import migrations

INDEXES = {
    "jobneed_people_site": ("people_id", "bu_id"),
    "jobneed_cuser_site": ("cuser_id", "bu_id"),
    "jobneed_muser_site": ("muser_id", "bu_id"),
    "jobneed_group_site": ("pgroup_id", "bu_id"),
    "jobneed_asset_qset": ("asset_id", "qset_id"),
}


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0012_jobneed_group_identifier")]

    operations = [
        # Built on a loaded `large` they take longer than the connections' DB_STATEMENT_TIMEOUT_MS.
        migrations.RunSQL("SET LOCAL statement_timeout = 0", migrations.RunSQL.noop),
        *(
            migrations.RunSQL(
                f"CREATE INDEX IF NOT EXISTS {name} ON jobneed ({', '.join(columns)})", f"DROP INDEX IF EXISTS {name}"
            )
            for name, columns in INDEXES.items()
        ),
    ]
