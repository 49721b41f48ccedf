-- asset_details: assets of a site changed since _mdtz, for mobile sync.
-- Calls fn_getassetvsquestionset twice per row, as the legacy system did.
CREATE OR REPLACE FUNCTION fn_getassetdetails(_mdtz timestamptz, _siteid bigint)
RETURNS TABLE (
    id bigint, uuid uuid, assetcode varchar, assetname varchar, enable boolean, iscritical boolean,
    parent_id bigint, runningstatus varchar, identifier varchar, type_id bigint, category_id bigint,
    subcategory_id bigint, brand_id bigint, ctzoffset integer, capacity numeric, unit_id bigint,
    bu_id bigint, client_id bigint, cuser_id bigint, muser_id bigint, cdtz timestamptz, mdtz timestamptz,
    location_id bigint, servprov_id bigint, servprovname varchar, qsetids text, qsetname text
)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT a.id, a.uuid, a.assetcode, a.assetname, a.enable, a.iscritical,
           a.parent_id, a.runningstatus, a.identifier, a.type_id, a.category_id,
           a.subcategory_id, a.brand_id, a.ctzoffset, a.capacity, a.unit_id,
           a.bu_id, a.client_id, a.cuser_id, a.muser_id, a.cdtz, a.mdtz,
           a.location_id, a.servprov_id, sp.buname,
           fn_getassetvsquestionset(a.bu_id, a.id::text, ''),
           fn_getassetvsquestionset(a.bu_id, a.id::text, 'name')
    FROM asset a LEFT JOIN bt sp ON sp.id = a.servprov_id
    WHERE a.mdtz >= _mdtz
      AND a.bu_id = _siteid
      AND a.identifier <> 'NEA'
      AND a.enable;
END;
$$;
