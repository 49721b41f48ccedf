-- web_capabilities: the web menu tree under p_root; only the root's cfor is checked.
CREATE OR REPLACE FUNCTION fn_get_web_caps(p_root bigint)
RETURNS TABLE (
    id bigint, capsname varchar, capscode varchar, parent_id bigint, cfor varchar,
    depth integer, path text, xpath text
)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE caps AS (
        SELECT c.id, c.capsname, c.capscode, c.parent_id, c.cfor,
               1 AS depth, c.capscode::text AS path, c.id::text AS xpath
        FROM capability c
        WHERE c.id = p_root AND c.cfor = 'WEB'
        UNION ALL
        SELECT c.id, c.capsname, c.capscode, c.parent_id, c.cfor,
               caps.depth + 1, caps.path || '->' || c.capscode,
               caps.xpath || '>' || c.id || (caps.depth + 1)
        FROM capability c JOIN caps ON c.parent_id = caps.id
    )
    SELECT caps.id, caps.capsname, caps.capscode, caps.parent_id, caps.cfor, caps.depth, caps.path, caps.xpath
    FROM caps
    ORDER BY caps.xpath, caps.id;
END;
$$;
