"""fn_get_siteslist_web reads assignsitegroup from the person of the asked client only.

The legacy function took `id = p_peopleid AND client_id = p_clientid` for both
isadmin and the groups; ours read the groups whatever the client, so a person
asked for under another client saw the sites of their own client's groups.
Forward installs the corrected query_backends/sql/fn_get_siteslist_web.sql; the
reverse restores the definition it replaces, kept here verbatim.
"""

from django.db import migrations

from query_backends.functions import FUNCTIONS

PREVIOUS = """
-- sites_list_web: the sites a person may pick in the web front end.
CREATE OR REPLACE FUNCTION fn_get_siteslist_web(p_clientid bigint, p_peopleid bigint)
RETURNS TABLE (
    id bigint, bucode varchar, buname varchar, butype_id bigint, butypename varchar, enable boolean,
    cdtz timestamptz, mdtz timestamptz, cuser_id bigint, muser_id bigint
)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_isadmin boolean;
    v_groups bigint[];
BEGIN
    SELECT p.isadmin INTO v_isadmin FROM people p WHERE p.id = p_peopleid AND p.client_id = p_clientid;

    IF coalesce(v_isadmin, false) THEN
        RETURN QUERY
        SELECT b.id, b.bucode, b.buname, b.butype_id, ta.taname, b.enable, b.cdtz, b.mdtz, b.cuser_id, b.muser_id
        FROM bt b LEFT JOIN typeassist ta ON ta.id = b.butype_id
        WHERE b.enable
          AND b.id IN (SELECT jsonb_array_elements_text(fn_get_bulist(p_clientid, true, true, 'array'))::bigint);
        RETURN;
    END IF;

    -- The cast fails with invalid_text_representation on a malformed token, as it always has.
    SELECT string_to_array(p.people_extras ->> 'assignsitegroup', ' ')::bigint[] INTO v_groups
    FROM people p WHERE p.id = p_peopleid;

    RETURN QUERY
    SELECT DISTINCT b.id, b.bucode, b.buname, b.butype_id, ta.taname, b.enable, b.cdtz, b.mdtz, b.cuser_id, b.muser_id
    FROM bt b LEFT JOIN typeassist ta ON ta.id = b.butype_id
    WHERE b.enable
      AND (b.id IN (SELECT pb.assignsites_id FROM pgbelonging pb WHERE pb.pgroup_id = ANY(v_groups))
           OR b.id IN (SELECT sp.bu_id FROM sitepeople sp
                       WHERE sp.people_id = p_peopleid AND current_date BETWEEN sp.fromdt AND sp.uptodt));
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0021_cache_triggers_always")]

    operations = [migrations.RunSQL(FUNCTIONS["fn_get_siteslist_web"].source, PREVIOUS)]
