"""The floor for the benchmark: the best hand-written SQL for each query's semantics, through a plain cursor.

Not a backend: it only tells how close the twins are to the physical limit of
this database for the same answer. Each returns raw rows (no shaping).
"""

JOB_COLUMNS = """jn.id, jn.jobdesc, jn.plandatetime, jn.expirydatetime, jn.gracetime, jn.receivedonserver,
    jn.starttime, jn.endtime, jn.remarks, jn.cdtz, jn.mdtz, jn.pgroup_id, jn.asset_id, jn.cuser_id, jn.frequency,
    jn.job_id, jn.jobstatus, jn.jobtype, jn.muser_id, jn.performedby_id, jn.priority, jn.qset_id, jn.scantype,
    jn.people_id, jn.attachmentcount, jn.identifier, jn.parent_id, jn.bu_id, jn.client_id, jn.seqno,
    jn.ticketcategory_id, jn.ctzoffset, jn.multifactor, jn.uuid"""
CURRENT = """((jn.plandatetime + jn.ctzoffset * interval '1 minute')::date BETWEEN current_date AND current_date + 1
       OR now() BETWEEN jn.plandatetime AND jn.expirydatetime)"""
# = ANY(ARRAY(subquery)) is evaluated once, before the scan, so the OR can use every FK index (BitmapOr).
INVOLVED = """(jn.people_id = %(p)s OR jn.cuser_id = %(p)s OR jn.muser_id = %(p)s OR jn.pgroup_id = ANY(ARRAY(
       SELECT pb.pgroup_id FROM pgbelonging pb WHERE pb.people_id = %(p)s AND pb.pgroup_id <> -1)))"""

SQL = {
    "job_needs": f"""SELECT {JOB_COLUMNS}, jn.other_info ->> 'istimebound', jn.ticket_id, jn.remarkstype_id
        FROM jobneed jn WHERE {CURRENT} AND jn.bu_id = %(bu)s AND jn.client_id = %(c)s
        AND jn.identifier NOT IN ('TICKET', 'EXTERNALTOUR') AND {INVOLVED}""",
    "external_tour_job_needs": f"""SELECT {JOB_COLUMNS} FROM jobneed jn WHERE {CURRENT}
        AND jn.client_id = %(c)s AND jn.identifier = 'EXTERNALTOUR' AND {INVOLVED}""",
    "schedule_for_adhoc": """SELECT jn.bu_id, jn.id, jn.jobdesc, jn.plandatetime, jn.expirydatetime, jn.asset_id,
        jn.qset_id, jn.people_id, jn.pgroup_id, jn.identifier, jn.jobstatus, jn.jobtype FROM jobneed jn
        WHERE jn.jobstatus <> 'COMPLETED' AND jn.asset_id = %(a)s AND jn.bu_id = %(bu)s AND jn.qset_id = %(q)s
        AND %(t)s BETWEEN jn.plandatetime - jn.gracetime * interval '1 minute' AND jn.expirydatetime
        AND (jn.people_id = %(p)s OR jn.pgroup_id = ANY(ARRAY(SELECT pb.pgroup_id FROM pgbelonging pb
             WHERE pb.people_id = %(p)s AND pb.pgroup_id <> -1)))
        ORDER BY jn.plandatetime, jn.id LIMIT 1""",
    "bu_list": """WITH RECURSIVE up AS (SELECT id, parent_id FROM bt WHERE id = %(bu)s AND %(up)s
            UNION SELECT b.id, b.parent_id FROM bt b JOIN up ON b.id = up.parent_id WHERE up.parent_id <> -1),
        down AS (SELECT id FROM bt WHERE id = %(bu)s AND %(down)s
            UNION SELECT b.id FROM bt b JOIN down ON b.parent_id = down.id)
        SELECT b.id, b.bucode, b.buname, b.parent_id FROM bt b
        WHERE b.id IN (SELECT id FROM up UNION SELECT id FROM down UNION SELECT %(bu)s) ORDER BY b.id""",
    "bulist_by_identifier": """WITH RECURSIVE t AS (
            SELECT id, identifier_id FROM bt WHERE id = %(bu)s AND parent_id = -1
            UNION SELECT b.id, b.identifier_id FROM bt b JOIN t ON b.parent_id = t.id)
        SELECT string_agg(t.id::text, ' ' ORDER BY t.id) FROM t JOIN typeassist ta ON ta.id = t.identifier_id
        WHERE ta.tacode = ANY(%(codes)s)""",
    "sites_list_web": """SELECT b.id, b.bucode, b.buname, b.butype_id, ta.taname, b.enable, b.cdtz, b.mdtz,
        b.cuser_id, b.muser_id FROM bt b LEFT JOIN typeassist ta ON ta.id = b.butype_id
        WHERE b.enable AND (b.id IN (SELECT pb.assignsites_id FROM pgbelonging pb WHERE pb.pgroup_id = ANY(
            (SELECT string_to_array(p.people_extras ->> 'assignsitegroup', ' ')::bigint[] FROM people p
             WHERE p.id = %(p)s)::bigint[]))
          OR b.id IN (SELECT sp.bu_id FROM sitepeople sp WHERE sp.people_id = %(p)s
                      AND current_date BETWEEN sp.fromdt AND sp.uptodt))""",
    "asset_questionsets": """SELECT string_agg(DISTINCT qs.id::text, ' ') FROM questionset qs
        WHERE qs.parent_id = -1 AND qs.bu_id = %(site)s AND qs.assetincludes @> ARRAY[%(asset)s]::varchar[]""",
    "asset_details": """SELECT a.*, sp.buname,
            (SELECT string_agg(q.idtext, ' ' ORDER BY q.idtext) FROM (SELECT DISTINCT qs.id::text AS idtext
             FROM questionset qs WHERE qs.parent_id = -1 AND qs.bu_id = a.bu_id
             AND qs.assetincludes @> ARRAY[a.id::text]::varchar[]) q),
            (SELECT string_agg(q.qsetname, '~' ORDER BY q.qsetname) FROM (SELECT DISTINCT qs.qsetname
             FROM questionset qs WHERE qs.parent_id = -1 AND qs.bu_id = a.bu_id
             AND qs.assetincludes @> ARRAY[a.id::text]::varchar[]) q)
        FROM asset a LEFT JOIN bt sp ON sp.id = a.servprov_id
        WHERE a.mdtz >= %(t)s AND a.bu_id = %(site)s AND a.identifier <> 'NEA' AND a.enable""",
    "web_capabilities": """WITH RECURSIVE caps AS (SELECT c.id, c.capsname, c.capscode, c.parent_id, c.cfor, 1 AS depth,
            c.capscode::text AS path, c.id::text AS xpath FROM capability c WHERE c.id = %(root)s AND c.cfor = 'WEB'
            UNION ALL SELECT c.id, c.capsname, c.capscode, c.parent_id, c.cfor, caps.depth + 1,
            caps.path || '->' || c.capscode, caps.xpath || '>' || c.id || (caps.depth + 1)
            FROM capability c JOIN caps ON c.parent_id = caps.id)
        SELECT * FROM caps ORDER BY xpath, id""",
}

CODES = {
    (True, False): ["CUSTOMER"],
    (False, True): ["SITE"],
    (True, True): ["CUSTOMER", "SITE"],
    (False, False): ["CLIENT"],
}


def arguments(query, params):
    """The floor SQL's named arguments from the query's cleaned parameters."""
    p = params
    return {
        "job_needs": lambda: {"p": p.get("people_id"), "bu": p.get("bu_id"), "c": p.get("client_id")},
        "external_tour_job_needs": lambda: {"p": p.get("people_id"), "c": p.get("client_id")},
        "schedule_for_adhoc": lambda: {
            "t": p.get("plandatetime"),
            "bu": p.get("bu_id"),
            "p": p.get("people_id"),
            "a": p.get("asset_id"),
            "q": p.get("questionset_id"),
        },
        "bu_list": lambda: {"bu": p.get("bu_id"), "up": p.get("up"), "down": p.get("down")},
        "bulist_by_identifier": lambda: {"bu": p.get("bu_id"), "codes": CODES[(p.get("customers"), p.get("sites"))]},
        "sites_list_web": lambda: {"p": p.get("people_id")},
        "asset_questionsets": lambda: {"site": p.get("site_id"), "asset": p.get("asset_id")},
        "asset_details": lambda: {"t": p.get("mdtz"), "site": p.get("site_id")},
        "web_capabilities": lambda: {"root": p.get("root_id")},
    }[query]()


def run(cursor, query, params):
    cursor.execute(SQL[query], arguments(query, params))
    return cursor.fetchall()
