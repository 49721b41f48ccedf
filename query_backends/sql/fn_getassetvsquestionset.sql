-- asset_questionsets: the top-level checklists of a site that include an asset, as text.
CREATE OR REPLACE FUNCTION fn_getassetvsquestionset(_siteid bigint, _assetid text, _type text)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_result text;
BEGIN
    IF lower(_type) = 'name' THEN
        SELECT string_agg(q.qsetname, '~' ORDER BY q.qsetname) INTO v_result
        FROM (SELECT DISTINCT qs.qsetname FROM questionset qs
              WHERE qs.parent_id = -1 AND qs.bu_id = _siteid AND _assetid = ANY(qs.assetincludes)) q;
    ELSE
        SELECT string_agg(q.idtext, ' ' ORDER BY q.idtext) INTO v_result
        FROM (SELECT DISTINCT qs.id::text AS idtext FROM questionset qs
              WHERE qs.parent_id = -1 AND qs.bu_id = _siteid AND _assetid = ANY(qs.assetincludes)) q;
    END IF;
    RETURN coalesce(v_result, '');
END;
$$;
