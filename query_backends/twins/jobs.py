"""Twins of fun_getjobneed, fun_getexttourjobneed and fn_get_schedule_for_adhoc."""

from django.db.models import DateField, DateTimeField, ExpressionWrapper, F, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from query_backends.models import GroupMembership, JobNeed
from query_backends.twins import as_rows
from query_backends.twins.clock import minutes, now, today, today_plus
from query_backends.twins.compiled import CompiledQuery

EXTERNAL_TOUR_COLUMNS = (
    "id",
    "jobdesc",
    "plandatetime",
    "expirydatetime",
    "gracetime",
    "receivedonserver",
    "starttime",
    "endtime",
    "remarks",
    "cdtz",
    "mdtz",
    "pgroup_id",
    "asset_id",
    "cuser_id",
    "frequency",
    "job_id",
    "jobstatus",
    "jobtype",
    "muser_id",
    "performedby_id",
    "priority",
    "qset_id",
    "scantype",
    "people_id",
    "attachmentcount",
    "identifier",
    "parent_id",
    "bu_id",
    "client_id",
    "seqno",
    "ticketcategory_id",
    "ctzoffset",
    "multifactor",
    "uuid",
)
JOB_NEED_COLUMNS = EXTERNAL_TOUR_COLUMNS + ("istimebound", "ticket_id", "remarkstype_id")
ADHOC_COLUMNS = (
    "bu_id",
    "jobneedid",
    "jobdesc",
    "plandatetime",
    "expirydatetime",
    "asset_id",
    "qset_id",
    "people_id",
    "pgroup_id",
    "identifier",
    "jobstatus",
    "jobtype",
)


def person_groups(people_id):
    """The groups of a person: pgbelonging.pgroup_id, leaving out the sentinel (NULL never matches)."""
    return GroupMembership.objects.filter(people_id=people_id).in_real_groups()


_GROUPS = CompiledQuery(person_groups)


def groups_of(people_id):
    return [row["pgroup_id"] for row in _GROUPS.rows(("pgroup_id",), people_id=people_id)]


def _involves(people_id, groups):
    # The groups are fetched first (query 1) and passed as a literal list: PostgreSQL can then answer the
    # whole OR with a BitmapOr of the foreign-key indexes, where `IN (subquery)` forces a scan of every
    # row of the client (docs/performance.md).
    return Q(people_id=people_id) | Q(cuser_id=people_id) | Q(muser_id=people_id) | Q(pgroup_id__in=groups)


def _current(client_id):
    """A client's plans whose local date is today or tomorrow, or whose window spans now."""
    local_plan = ExpressionWrapper(F("plandatetime") + minutes(F("ctzoffset")), output_field=DateTimeField())
    return JobNeed.objects.alias(local_plan_date=Cast(local_plan, DateField())).filter(
        Q(local_plan_date__gte=today(), local_plan_date__lte=today_plus(1))
        | Q(plandatetime__lte=now(), expirydatetime__gte=now()),
        client_id=client_id,
    )


def _current_for(people_id, client_id, groups):
    return _current(client_id).filter(_involves(people_id, groups))


def _not_tickets_or_tours(queryset):
    # NOT IN leaves NULL identifiers out; Django's exclude() alone would keep them.
    return queryset.filter(identifier__isnull=False).exclude(identifier__in=("TICKET", "EXTERNALTOUR"))


_JOB_NEEDS = CompiledQuery(
    lambda people_id, bu_id, client_id, groups: _not_tickets_or_tours(
        _current_for(people_id, client_id, groups).filter(bu_id=bu_id)
    ).annotate(istimebound=KT("other_info__istimebound"))
)
_EXTERNAL_TOURS = CompiledQuery(
    lambda people_id, client_id, groups: _current_for(people_id, client_id, groups).filter(identifier="EXTERNALTOUR")
)


def job_needs(people_id, bu_id, client_id):
    return _JOB_NEEDS.rows(
        JOB_NEED_COLUMNS, people_id=people_id, bu_id=bu_id, client_id=client_id, groups=groups_of(people_id)
    )


def external_tour_job_needs(people_id, bu_id, client_id):
    # bu_id is accepted and ignored, as the legacy function does.
    return _EXTERNAL_TOURS.rows(
        EXTERNAL_TOUR_COLUMNS, people_id=people_id, client_id=client_id, groups=groups_of(people_id)
    )


def _open_plans(plandatetime, bu_id, people_id, asset_id, questionset_id):
    window_start = ExpressionWrapper(F("plandatetime") - minutes(F("gracetime")), output_field=DateTimeField())
    return (
        JobNeed.objects.alias(window_start=window_start)
        .filter(
            jobstatus__isnull=False,
            asset_id=asset_id,
            bu_id=bu_id,
            qset_id=questionset_id,
            window_start__lte=plandatetime,
            expirydatetime__gte=plandatetime,
        )
        .exclude(jobstatus="COMPLETED")
        # asset, question set and site narrow the rows first: the groups can stay a subquery (one round trip).
        .filter(Q(people_id=people_id) | Q(pgroup_id__in=person_groups(people_id).values("pgroup_id")))
        .annotate(jobneedid=F("id"))
        .order_by("plandatetime", "id")[:1]
    )


_OPEN_PLANS = CompiledQuery(_open_plans)


def schedule_for_adhoc(plandatetime, bu_id, people_id, asset_id, questionset_id):
    return _OPEN_PLANS.rows(
        ADHOC_COLUMNS,
        plandatetime=plandatetime,
        bu_id=bu_id,
        people_id=people_id,
        asset_id=asset_id,
        questionset_id=questionset_id,
    )


def job_needs_many(people_ids, bu_id, client_id):
    """job_needs for many people in two queries: their groups, then every row any of them is involved in."""
    people = set(people_ids)
    groups_of = {}
    memberships = (
        GroupMembership.objects.filter(people_id__in=people).in_real_groups().values_list("people_id", "pgroup_id")
    )
    for person, group in memberships:
        groups_of.setdefault(person, set()).add(group)
    all_groups = set().union(*groups_of.values()) if groups_of else set()
    involved = Q(people_id__in=people) | Q(cuser_id__in=people) | Q(muser_id__in=people) | Q(pgroup_id__in=all_groups)
    queryset = _not_tickets_or_tours(_current(client_id).filter(involved, bu_id=bu_id))
    rows = as_rows(queryset.annotate(istimebound=KT("other_info__istimebound")), JOB_NEED_COLUMNS)
    answers = {}
    for person in people_ids:
        mine = groups_of.get(person, set())
        answers[person] = [
            r for r in rows if person in (r["people_id"], r["cuser_id"], r["muser_id"]) or r["pgroup_id"] in mine
        ]
    return answers
