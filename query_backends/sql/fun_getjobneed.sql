-- job_needs: today's and tomorrow's work for a person at a site.
CREATE OR REPLACE FUNCTION fun_getjobneed(_peopleid bigint, _buid bigint, _clientid bigint)
RETURNS TABLE (
    id bigint, jobdesc varchar, plandatetime timestamptz, expirydatetime timestamptz, gracetime integer,
    receivedonserver timestamptz, starttime timestamptz, endtime timestamptz, remarks text,
    cdtz timestamptz, mdtz timestamptz, pgroup_id bigint, asset_id bigint, cuser_id bigint,
    frequency varchar, job_id bigint, jobstatus varchar, jobtype varchar, muser_id bigint,
    performedby_id bigint, priority varchar, qset_id bigint, scantype varchar, people_id bigint,
    attachmentcount integer, identifier varchar, parent_id bigint, bu_id bigint, client_id bigint,
    seqno smallint, ticketcategory_id bigint, ctzoffset integer, multifactor numeric, uuid uuid,
    istimebound text, ticket_id bigint, remarkstype_id bigint
)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT jn.id, jn.jobdesc, jn.plandatetime, jn.expirydatetime, jn.gracetime,
           jn.receivedonserver, jn.starttime, jn.endtime, jn.remarks,
           jn.cdtz, jn.mdtz, jn.pgroup_id, jn.asset_id, jn.cuser_id,
           jn.frequency, jn.job_id, jn.jobstatus, jn.jobtype, jn.muser_id,
           jn.performedby_id, jn.priority, jn.qset_id, jn.scantype, jn.people_id,
           jn.attachmentcount, jn.identifier, jn.parent_id, jn.bu_id, jn.client_id,
           jn.seqno, jn.ticketcategory_id, jn.ctzoffset, jn.multifactor, jn.uuid,
           jn.other_info ->> 'istimebound', jn.ticket_id, jn.remarkstype_id
    FROM jobneed jn
    WHERE ((jn.plandatetime + jn.ctzoffset * interval '1 minute')::date
               BETWEEN current_date AND current_date + 1
           OR now() BETWEEN jn.plandatetime AND jn.expirydatetime)
      AND jn.bu_id = _buid
      AND jn.client_id = _clientid
      AND jn.identifier NOT IN ('TICKET', 'EXTERNALTOUR')
      AND (jn.people_id = _peopleid
           OR jn.cuser_id = _peopleid
           OR jn.muser_id = _peopleid
           OR jn.pgroup_id IN (SELECT pb.pgroup_id FROM pgbelonging pb
                               WHERE pb.people_id = _peopleid AND pb.pgroup_id <> -1));
END;
$$;
