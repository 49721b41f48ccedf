"""The floor for the benchmark: the best hand-written SQL for a query's semantics, through a plain cursor.

Not a backend: it only tells how close the twins are to the physical limit of this database for the
same answer, so it hands back what every caller gets — rows as dicts keyed by column, made by psycopg's
dict_row — and nothing more (no checks, no error translation). It runs on the same psycopg connection
as the twins, so it is bound server-side and prepared by psycopg alike. Each query's definition holds
its Floor; the SQL below is written once and shared where queries share it. A floor a twin beats was
not the floor: it is rewritten with whatever the twin does better (docs/performance.md, "The floors").
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True, kw_only=True)
class Floor:
    sql: str
    # Each named placeholder of the SQL: the query parameter it takes, or a callable(cleaned params) -> value.
    arguments: Mapping[str, str | Callable]

    def bind(self, params):
        return {name: source(params) if callable(source) else params[source] for name, source in self.arguments.items()}

    def run(self, cursor, params):
        """cursor: a psycopg cursor whose row factory makes the dicts (psycopg.rows.dict_row)."""
        cursor.execute(self.sql, self.bind(params))
        return cursor.fetchall()

    def problems(self, param_names):
        """What does not agree between the SQL, its argument map and the query's parameters."""
        placeholders = set(_PLACEHOLDER.findall(self.sql))
        found = []
        if missing := placeholders - set(self.arguments):
            found.append(f"floor SQL placeholder(s) {', '.join(sorted(missing))} have no argument")
        if unused := set(self.arguments) - placeholders:
            found.append(f"floor argument(s) {', '.join(sorted(unused))} appear nowhere in its SQL")
        unknown = {s for s in self.arguments.values() if isinstance(s, str)} - set(param_names)
        if unknown:
            found.append(f"floor argument(s) read unknown parameter(s) {', '.join(sorted(unknown))}")
        return found


JOB_COLUMNS = """jn.id, jn.jobdesc, jn.plandatetime, jn.expirydatetime, jn.gracetime, jn.receivedonserver,
    jn.starttime, jn.endtime, jn.remarks, jn.cdtz, jn.mdtz, jn.pgroup_id, jn.asset_id, jn.cuser_id, jn.frequency,
    jn.job_id, jn.jobstatus, jn.jobtype, jn.muser_id, jn.performedby_id, jn.priority, jn.qset_id, jn.scantype,
    jn.people_id, jn.attachmentcount, jn.identifier, jn.parent_id, jn.bu_id, jn.client_id, jn.seqno,
    jn.ticketcategory_id, jn.ctzoffset, jn.multifactor, jn.uuid"""
CURRENT = """((jn.plandatetime + jn.ctzoffset * interval '1 minute')::date BETWEEN current_date AND current_date + 1
       OR now() BETWEEN jn.plandatetime AND jn.expirydatetime)"""
# = ANY(ARRAY(subquery)) is evaluated once, before the scan, so the OR can use every FK index (BitmapOr).
# `client_id + 0`: no index answers it, so a generic plan cannot AND the whole client's bitmap (a tenth to a
# sixtieth of jobneed) into the person's few rows; it is checked on those rows instead.
INVOLVED = """(jn.people_id = %(p)s OR jn.cuser_id = %(p)s OR jn.muser_id = %(p)s OR jn.pgroup_id = ANY(ARRAY(
       SELECT pb.pgroup_id FROM pgbelonging pb WHERE pb.people_id = %(p)s AND pb.pgroup_id <> -1)))"""

JOB_NEEDS = Floor(
    sql=f"""SELECT {JOB_COLUMNS}, jn.other_info ->> 'istimebound', jn.ticket_id, jn.remarkstype_id
        FROM jobneed jn WHERE {CURRENT} AND jn.bu_id = %(bu)s AND jn.client_id + 0 = %(c)s
        AND jn.identifier NOT IN ('TICKET', 'EXTERNALTOUR') AND {INVOLVED}""",
    arguments={"p": "people_id", "bu": "bu_id", "c": "client_id"},
)
EXTERNAL_TOUR_JOB_NEEDS = Floor(
    sql=f"""SELECT {JOB_COLUMNS} FROM jobneed jn WHERE {CURRENT}
        AND jn.client_id + 0 = %(c)s AND jn.identifier = 'EXTERNALTOUR' AND {INVOLVED}""",
    arguments={"p": "people_id", "c": "client_id"},
)
SCHEDULE_FOR_ADHOC = Floor(
    sql="""SELECT jn.bu_id, jn.id, jn.jobdesc, jn.plandatetime, jn.expirydatetime, jn.asset_id,
        jn.qset_id, jn.people_id, jn.pgroup_id, jn.identifier, jn.jobstatus, jn.jobtype FROM jobneed jn
        WHERE jn.jobstatus <> 'COMPLETED' AND jn.asset_id = %(a)s AND jn.bu_id = %(bu)s AND jn.qset_id = %(q)s
        AND %(t)s BETWEEN jn.plandatetime - jn.gracetime * interval '1 minute' AND jn.expirydatetime
        AND (jn.people_id = %(p)s OR jn.pgroup_id = ANY(ARRAY(SELECT pb.pgroup_id FROM pgbelonging pb
             WHERE pb.people_id = %(p)s AND pb.pgroup_id <> -1)))
        ORDER BY jn.plandatetime, jn.id LIMIT 1""",
    arguments={"t": "plandatetime", "bu": "bu_id", "p": "people_id", "a": "asset_id", "q": "questionset_id"},
)
# Walks join on `= ANY(ARRAY[walk column])`: no hash or merge join can answer it, so every step is an index
# probe per row of the walk, whatever the size of the table (a generic plan would hash a scan of it per step).
# The floor answers the text format, the one the benchmark samples.
BU_LIST = Floor(
    sql="""WITH RECURSIVE up AS (SELECT id, parent_id FROM bt WHERE id = %(bu)s AND %(up)s
            UNION SELECT b.id, b.parent_id FROM up JOIN bt b ON b.id = ANY(ARRAY[up.parent_id])
            WHERE up.parent_id <> -1),
        down AS (SELECT id FROM bt WHERE id = %(bu)s AND %(down)s
            UNION SELECT b.id FROM down JOIN bt b ON b.parent_id = ANY(ARRAY[down.id]))
        SELECT array_to_string(array_agg(DISTINCT id ORDER BY id), ' ') FROM (SELECT id FROM up UNION ALL
            SELECT id FROM down UNION ALL SELECT id FROM bt WHERE id = %(bu)s) ids""",
    arguments={"bu": "bu_id", "up": "up", "down": "down"},
)
# Which unit types bulist_by_identifier answers, by its (customers, sites) flags.
CODES = {
    (True, False): ["CUSTOMER"],
    (False, True): ["SITE"],
    (True, True): ["CUSTOMER", "SITE"],
    (False, False): ["CLIENT"],
}
BULIST_BY_IDENTIFIER = Floor(
    sql="""WITH RECURSIVE t AS (
            SELECT id, identifier_id FROM bt WHERE id = %(bu)s AND parent_id = -1
            UNION SELECT b.id, b.identifier_id FROM t JOIN bt b ON b.parent_id = ANY(ARRAY[t.id]))
        SELECT string_agg(t.id::text, ' ' ORDER BY t.id) FROM t JOIN typeassist ta ON ta.id = t.identifier_id
        WHERE ta.tacode = ANY(%(codes)s)""",
    arguments={"bu": "bu_id", "codes": lambda p: CODES[(p["customers"], p["sites"])]},
)
# The sites reach bt as one `id = ANY(ARRAY(…))` index scan, as the twin's do: `IN (subquery) OR IN (subquery)`
# made a sequential scan of all of bt (5,417 units on `large`) for a handful of sites. Each branch is gated on
# the person *of this client*: an admin's is the client's tree, anyone else's their groups' and current sites.
SITES_LIST_WEB = Floor(
    sql="""WITH RECURSIVE person AS (SELECT p.isadmin, p.people_extras FROM people p
            WHERE p.id = %(p)s AND p.client_id = %(c)s),
        up AS (SELECT id, parent_id FROM bt WHERE id = %(c)s AND EXISTS (SELECT FROM person WHERE isadmin)
            UNION SELECT b.id, b.parent_id FROM up JOIN bt b ON b.id = ANY(ARRAY[up.parent_id])
            WHERE up.parent_id <> -1),
        down AS (SELECT id FROM bt WHERE id = %(c)s AND EXISTS (SELECT FROM person WHERE isadmin)
            UNION SELECT b.id FROM down JOIN bt b ON b.parent_id = ANY(ARRAY[down.id]))
        SELECT b.id, b.bucode, b.buname, b.butype_id, ta.taname, b.enable, b.cdtz, b.mdtz, b.cuser_id, b.muser_id
        FROM bt b LEFT JOIN typeassist ta ON ta.id = b.butype_id
        WHERE b.enable AND b.id = ANY(ARRAY(
            SELECT id FROM up UNION ALL SELECT id FROM down
            UNION ALL SELECT pb.assignsites_id FROM pgbelonging pb WHERE pb.pgroup_id = ANY(ARRAY(
                SELECT unnest(string_to_array(person.people_extras ->> 'assignsitegroup', ' ')::bigint[])
                FROM person WHERE NOT person.isadmin))
            UNION ALL SELECT sp.bu_id FROM sitepeople sp WHERE sp.people_id = %(p)s
                AND current_date BETWEEN sp.fromdt AND sp.uptodt AND NOT EXISTS (SELECT FROM person WHERE isadmin)))""",
    arguments={"p": "people_id", "c": "client_id"},
)
ASSET_QUESTIONSETS = Floor(
    sql="""SELECT string_agg(DISTINCT qs.id::text, ' ') FROM questionset qs
        WHERE qs.parent_id = -1 AND qs.bu_id = %(site)s AND qs.assetincludes @> ARRAY[%(asset)s]::varchar[]""",
    arguments={"site": "site_id", "asset": "asset_id"},
)
# The site's checklists read once, unnested to (asset id text, checklist) and aggregated per asset; the
# function's way (two checklist lookups per asset) is 30 times slower on a big site.
ASSET_DETAILS = Floor(
    sql="""WITH pairs AS (SELECT unnest(qs.assetincludes) AS asset_key, qs.id::text AS idtext, qs.qsetname
            FROM questionset qs WHERE qs.parent_id = -1 AND qs.bu_id = %(site)s),
        per_asset AS (SELECT asset_key, string_agg(DISTINCT idtext, ' ' ORDER BY idtext) AS ids,
            string_agg(DISTINCT qsetname, '~' ORDER BY qsetname) AS names FROM pairs GROUP BY asset_key)
        SELECT a.*, (SELECT sp.buname FROM bt sp WHERE sp.id = a.servprov_id) AS servprovname,
            coalesce(per_asset.ids, '') AS qsetids, coalesce(per_asset.names, '') AS qsetname
        FROM asset a LEFT JOIN per_asset ON per_asset.asset_key = a.id::text
        WHERE a.mdtz >= %(t)s AND a.bu_id = %(site)s AND a.identifier <> 'NEA' AND a.enable""",
    arguments={"t": "mdtz", "site": "site_id"},
)
WEB_CAPABILITIES = Floor(
    sql="""WITH RECURSIVE caps AS (SELECT c.id, c.capsname, c.capscode, c.parent_id, c.cfor, 1 AS depth,
            c.capscode::text AS path, c.id::text AS xpath FROM capability c WHERE c.id = %(root)s AND c.cfor = 'WEB'
            UNION ALL SELECT c.id, c.capsname, c.capscode, c.parent_id, c.cfor, caps.depth + 1,
            caps.path || '->' || c.capscode, caps.xpath || '>' || c.id || (caps.depth + 1)
            FROM caps JOIN capability c ON c.parent_id = ANY(ARRAY[caps.id]))
        SELECT * FROM caps ORDER BY xpath, id""",
    arguments={"root": "root_id"},
)
