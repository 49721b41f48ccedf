"""Twins of fun_getjobneed, fun_getexttourjobneed and fn_get_schedule_for_adhoc."""

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import BigIntegerField, DateField, DateTimeField, ExpressionWrapper, F, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from query_backends.models import GroupMembership, JobNeed
from query_backends.twins import as_rows
from query_backends.twins.clock import minutes, now, today, today_plus
from query_backends.twins.compiled import CompiledQuery
from query_backends.twins.postgres import EqualsAny

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


def _involves(people_id):
    # The groups as one array evaluated before the scan (an InitPlan), not `IN (subquery)`: the planner can
    # then answer the whole OR with a BitmapOr of the four foreign-key indexes, where a hashed subplan forces
    # a scan of every row of the client (docs/performance.md). One statement, one round trip.
    groups = ArraySubquery(person_groups(people_id).values("pgroup_id"))
    return Q(people_id=people_id) | Q(cuser_id=people_id) | Q(muser_id=people_id) | Q(EqualsAny(F("pgroup_id"), groups))


def _current(client_id):
    """A client's plans whose local date is today or tomorrow, or whose window spans now.

    The client is compared as `client_id + 0`, which no index answers: every row of one person is one
    client's, so the client's index (a tenth to a sixtieth of the table) never narrows the person's BitmapOr,
    yet a generic plan, guessing rows of all clients, ANDs its whole bitmap in — 13 of the 15 ms of an
    external tour on `large`. Filtered on the person's few heap rows instead, it costs nothing.
    """
    local_plan = ExpressionWrapper(F("plandatetime") + minutes(F("ctzoffset")), output_field=DateTimeField())
    unindexed_client = ExpressionWrapper(F("client_id") + 0, output_field=BigIntegerField())
    plans = JobNeed.objects.alias(local_plan_date=Cast(local_plan, DateField()), client_unindexed=unindexed_client)
    return plans.filter(
        Q(local_plan_date__gte=today(), local_plan_date__lte=today_plus(1))
        | Q(plandatetime__lte=now(), expirydatetime__gte=now()),
        client_unindexed=client_id,
    )


def _not_tickets_or_tours(queryset):
    # NOT IN leaves NULL identifiers out; Django's exclude() alone would keep them.
    return queryset.filter(identifier__isnull=False).exclude(identifier__in=("TICKET", "EXTERNALTOUR"))


_JOB_NEEDS = CompiledQuery(
    lambda people_id, bu_id, client_id: _not_tickets_or_tours(
        _current(client_id).filter(_involves(people_id), bu_id=bu_id)
    ).annotate(istimebound=KT("other_info__istimebound"))
)
_EXTERNAL_TOURS = CompiledQuery(
    lambda people_id, client_id: _current(client_id).filter(_involves(people_id), identifier="EXTERNALTOUR")
)


def job_needs(people_id, bu_id, client_id):
    return _JOB_NEEDS.rows(JOB_NEED_COLUMNS, people_id=people_id, bu_id=bu_id, client_id=client_id)


def external_tour_job_needs(people_id, bu_id, client_id):
    # bu_id is accepted and ignored, as the legacy function does.
    return _EXTERNAL_TOURS.rows(EXTERNAL_TOUR_COLUMNS, people_id=people_id, client_id=client_id)


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
