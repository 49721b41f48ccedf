"""Twins of fn_get_bulist, fn_getbulist_basedon_idnf and fn_get_siteslist_web.

Trees are walked in the database with recursive CTEs (django-cte), one query
per call, so the cost does not grow with the number of levels.
"""

from django.contrib.postgres.aggregates import ArrayAgg, StringAgg
from django.contrib.postgres.fields import ArrayField
from django.db.models import (
    Aggregate,
    BigIntegerField,
    BooleanField,
    Case,
    F,
    Func,
    IntegerField,
    JSONField,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, JSONObject
from django.db.models.lookups import Exact
from django_cte import CTE, with_cte

from query_backends.models import SENTINEL_ID, BusinessUnit, GroupMembership, People, SitePeople, TypeAssist
from query_backends.twins.clock import today
from query_backends.twins.compiled import CompiledQuery

SITE_COLUMNS = ("id", "bucode", "buname", "butype_id", "butypename", "enable", "cdtz", "mdtz", "cuser_id", "muser_id")
IDENTIFIER_CODES = {
    (True, False): ("CUSTOMER",),
    (False, True): ("SITE",),
    (True, True): ("CUSTOMER", "SITE"),
    (False, False): ("CLIENT",),
}


class StringToArray(Func):
    function = "string_to_array"


def _ancestors(bu_id, fields=()):
    """bu_id and its ancestors; the walk stops at a NULL parent or at the sentinel, which is not added."""
    columns = ("id", "parent_id", *(f for f in fields if f != "parent_id"))

    def make(cte):
        return (
            BusinessUnit.objects.filter(id=bu_id)
            .values(*columns)
            # The sentinel stop filters the walk's own rows: once they are all at the top, the join has nothing
            # to probe and bt is not scanned again (filtering bt's rows instead costs one more scan per call).
            .union(
                cte.join(BusinessUnit, id=cte.col.parent_id)
                .exclude(Exact(cte.col.parent_id, SENTINEL_ID))
                .values(*columns),
                all=False,
            )
        )

    return CTE.recursive(make, name="bu_up")


def _descendants(bu_id, fields=()):
    columns = ("id", *fields)

    def make(cte):
        return (
            BusinessUnit.objects.filter(id=bu_id)
            .values(*columns)
            .union(cte.join(BusinessUnit, parent_id=cte.col.id).values(*columns), all=False)
        )

    return CTE.recursive(make, name="bu_down")


def _related(bu_id, up, down, fields=()):
    """(the walks, a CTE of bu_id with its ancestors and/or descendants, carrying `fields` along the walk)."""
    columns = ("id", *fields)
    walks = [walk for wanted, walk in ((up, _ancestors(bu_id, fields)), (down, _descendants(bu_id, fields))) if wanted]
    units = BusinessUnit.objects.filter(id=bu_id).values(*columns)
    if walks:
        units = units.union(*(walk.queryset().values(*columns) for walk in walks))
    return walks, CTE(units, name="bu_related")


def related_ids(bu_id, up, down):
    """The ids of bu_id with its ancestors (up) and/or descendants (down); bu_id alone for neither."""
    walks, related = _related(bu_id, up, down)
    return with_cte(*walks, related, select=related.queryset().values("id"))


class JSONBObjectAgg(Aggregate):
    function = "jsonb_object_agg"
    output_field = JSONField()


def _one_value(walks, related, aggregate):
    # An aggregate with no GROUP BY: exactly one row, NULL over no units.
    grouped = related.queryset().annotate(one=Value(1, output_field=IntegerField())).values("one")
    return with_cte(*walks, related, select=grouped.annotate(answer=aggregate).values_list("answer"))


def _ids_text(bu_id, up, down):
    return _one_value(*_related(bu_id, up, down), StringAgg(Cast("id", TextField()), " ", order_by="id"))


def _ids_array(bu_id, up, down):
    return _one_value(*_related(bu_id, up, down), ArrayAgg("id", order_by="id"))


def _units_object(bu_id, up, down):
    # The unit's columns ride along the walk: no join back to bt, whose plan the walk's estimates would spoil.
    fields = ("bucode", "buname", "parent_id")
    value = JSONObject(**{name: name for name in fields})
    return _one_value(*_related(bu_id, up, down, fields), JSONBObjectAgg(Cast("id", TextField()), value))


_BU_LIST = {"text": CompiledQuery(_ids_text), "array": CompiledQuery(_ids_array), "jsonb": CompiledQuery(_units_object)}
_EMPTY = {"text": "", "array": [], "jsonb": None}


def bu_list(bu_id, up=True, down=True, fmt="text"):
    """The whole answer is built by the database in one statement, whatever the size of the tree."""
    fmt = fmt.lower()
    [row] = _BU_LIST[fmt].rows(("answer",), bu_id=bu_id, up=up, down=down)
    return _EMPTY[fmt] if row["answer"] is None else row["answer"]


def _units_of_kind(bu_id, codes):
    """A top-level client's tree, filtered by identifier on the walk's own rows: no join back to bt."""

    def make(cte):
        return (
            BusinessUnit.objects.filter(id=bu_id, parent_id=SENTINEL_ID)
            .values("id", "identifier_id")
            .union(cte.join(BusinessUnit, parent_id=cte.col.id).values("id", "identifier_id"), all=False)
        )

    tree = CTE.recursive(make, name="bu_kind")
    kinds = TypeAssist.objects.filter(tacode__in=codes).values("id")
    return with_cte(tree, select=tree.queryset().filter(identifier_id__in=kinds).order_by("id"))


_UNITS_OF_KIND = CompiledQuery(_units_of_kind)


def bulist_by_identifier(bu_id, customers=True, sites=True):
    if bu_id is None:
        return ""
    codes = list(IDENTIFIER_CODES[(customers, sites)])
    return " ".join(str(r["id"]) for r in _UNITS_OF_KIND.rows(("id",), bu_id=bu_id, codes=codes))


def _person(client_id, people_id):
    """The person *of this client*: isadmin and the groups come from the row with both ids, or from none."""
    # The CASE keeps the cast from running for an admin, whose assignsitegroup the legacy
    # function never reads; for anyone else a malformed token fails in the database, as it did.
    groups_cast = Cast(StringToArray(KT("people_extras__assignsitegroup"), Value(" ")), ArrayField(BigIntegerField()))
    return People.objects.filter(id=people_id, client_id=client_id).annotate(
        admin=Case(When(isadmin=True, then=Value(True)), default=Value(False), output_field=BooleanField()),
        groups=Case(When(isadmin=True, then=Value(None)), default=groups_cast),
    )


def _admin_sites(client_id):
    # The walk as a subquery keeps an admin's call at two queries.
    return _enabled_sites(BusinessUnit.objects.filter(id__in=related_ids(client_id, up=True, down=True)))


def _assigned_sites(people_id, groups):
    current = SitePeople.objects.filter(people_id=people_id, fromdt__lte=today(), uptodt__gte=today())
    return _enabled_sites(
        BusinessUnit.objects.filter(
            Q(id__in=GroupMembership.objects.filter(pgroup_id__in=groups).values("assignsites_id"))
            | Q(id__in=current.values("bu_id"))
        )
    )


def _enabled_sites(units):
    return units.filter(enable=True).annotate(butypename=F("butype__taname"))


_PERSON, _ADMIN_SITES, _ASSIGNED_SITES = (
    CompiledQuery(_person),
    CompiledQuery(_admin_sites),
    CompiledQuery(_assigned_sites),
)


def sites_list_web(client_id, people_id):
    person = _PERSON.rows(("admin", "groups"), client_id=client_id, people_id=people_id)
    admin, groups = (person[0]["admin"], person[0]["groups"]) if person else (False, None)
    if admin:
        return _ADMIN_SITES.rows(SITE_COLUMNS, client_id=client_id)
    return _ASSIGNED_SITES.rows(SITE_COLUMNS, people_id=people_id, groups=groups or [])
