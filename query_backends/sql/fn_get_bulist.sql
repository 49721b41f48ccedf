-- bu_list: p_buid with its ancestors (up) and/or descendants (down), as text, array or jsonb.
CREATE OR REPLACE FUNCTION fn_get_bulist(p_buid bigint, p_up boolean, p_dn boolean, p_format text)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_format text := lower(p_format);
    v_ids bigint[];
BEGIN
    IF v_format IS NULL OR v_format NOT IN ('text', 'array', 'jsonb') THEN
        RAISE EXCEPTION 'fn_get_bulist: unknown format %', p_format USING ERRCODE = '22023';
    END IF;

    WITH RECURSIVE
    up_walk AS (
        SELECT b.id, b.parent_id FROM bt b WHERE b.id = p_buid AND p_up
        UNION
        SELECT b.id, b.parent_id FROM bt b JOIN up_walk u ON b.id = u.parent_id
        WHERE u.parent_id <> -1
    ),
    down_walk AS (
        SELECT b.id FROM bt b WHERE b.id = p_buid AND p_dn
        UNION
        SELECT b.id FROM bt b JOIN down_walk d ON b.parent_id = d.id
    ),
    related AS (
        SELECT up_walk.id FROM up_walk
        UNION SELECT down_walk.id FROM down_walk
        UNION SELECT b.id FROM bt b WHERE b.id = p_buid
    )
    SELECT array_agg(related.id ORDER BY related.id) INTO v_ids FROM related;

    IF v_format = 'text' THEN
        RETURN to_jsonb(coalesce(array_to_string(v_ids, ' '), ''));
    ELSIF v_format = 'array' THEN
        RETURN coalesce(to_jsonb(v_ids), '[]'::jsonb);
    END IF;
    RETURN (
        SELECT jsonb_object_agg(b.id::text, jsonb_build_object(
                   'bucode', b.bucode, 'buname', b.buname, 'parent_id', b.parent_id))
        FROM bt b WHERE b.id = ANY(v_ids)
    );
END;
$$;
