-- bulist_by_identifier: a top-level client's units of one kind, ids ascending, space-separated.
CREATE OR REPLACE FUNCTION fn_getbulist_basedon_idnf(p_buid bigint, p_cus boolean, p_si boolean)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_codes text[];
    v_result text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bt WHERE bt.id = p_buid AND bt.parent_id = -1) THEN
        RETURN '';
    END IF;
    v_codes := CASE
        WHEN p_cus AND p_si THEN ARRAY['CUSTOMER', 'SITE']
        WHEN p_cus THEN ARRAY['CUSTOMER']
        WHEN p_si THEN ARRAY['SITE']
        ELSE ARRAY['CLIENT']
    END;

    WITH RECURSIVE tree AS (
        SELECT b.id, b.identifier_id FROM bt b WHERE b.id = p_buid
        UNION
        SELECT b.id, b.identifier_id FROM bt b JOIN tree t ON b.parent_id = t.id
    )
    SELECT string_agg(tree.id::text, ' ' ORDER BY tree.id) INTO v_result
    FROM tree JOIN typeassist ta ON ta.id = tree.identifier_id
    WHERE ta.tacode = ANY(v_codes);
    RETURN coalesce(v_result, '');
END;
$$;
