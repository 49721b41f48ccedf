-- schedule_for_adhoc: the open scheduled instance an ad-hoc scan belongs to (at most one row).
CREATE OR REPLACE FUNCTION fn_get_schedule_for_adhoc(
    _plandatetime timestamptz, _buid bigint, _peopleid bigint, _assetid bigint, _questionsetid bigint)
RETURNS TABLE (
    bu_id bigint, jobneedid bigint, jobdesc varchar, plandatetime timestamptz, expirydatetime timestamptz,
    asset_id bigint, qset_id bigint, people_id bigint, pgroup_id bigint, identifier varchar,
    jobstatus varchar, jobtype varchar
)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT jn.bu_id, jn.id, jn.jobdesc, jn.plandatetime, jn.expirydatetime,
           jn.asset_id, jn.qset_id, jn.people_id, jn.pgroup_id, jn.identifier,
           jn.jobstatus, jn.jobtype
    FROM jobneed jn
    WHERE jn.jobstatus <> 'COMPLETED'
      AND jn.asset_id = _assetid
      AND jn.bu_id = _buid
      AND jn.qset_id = _questionsetid
      AND _plandatetime BETWEEN jn.plandatetime - jn.gracetime * interval '1 minute' AND jn.expirydatetime
      AND (jn.people_id = _peopleid
           OR jn.pgroup_id IN (SELECT pb.pgroup_id FROM pgbelonging pb
                               WHERE pb.people_id = _peopleid AND pb.pgroup_id <> -1))
    ORDER BY jn.plandatetime, jn.id
    LIMIT 1;
END;
$$;
