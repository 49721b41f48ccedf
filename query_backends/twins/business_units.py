"""Twins of fn_get_bulist, fn_getbulist_basedon_idnf and fn_get_siteslist_web.

Trees are walked in the database with recursive CTEs (django-cte), one statement
per call whatever the depth or the size of the tree: the database builds the whole
answer, and no list of ids ever travels as parameters.
"""

import json

from django.contrib.postgres.aggregates import ArrayAgg
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.fields import ArrayField
from django.db.models import (
    BigIntegerField,
    Exists,
    F,
    Q,
    TextField,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.db.models.lookups import Exact
from django_cte import CTE, with_cte

from query_backends.models import SENTINEL_ID, BusinessUnit, GroupMembership, People, SitePeople, TypeAssist
from query_backends.twins import one_value
from query_backends.twins.clock import today
from query_backends.twins.compiled import CompiledQuery
from query_backends.twins.postgres import (
    ArrayToString,
    EqualsAny,
    InArrayOf,
    JSONBuildObject,
    JSONObjectAgg,
    StringToArray,
    Unnest,
)

SITE_COLUMNS = ("id", "bucode", "buname", "butype_id", "butypename", "enable", "cdtz", "mdtz", "cuser_id", "muser_id")
IDENTIFIER_CODES = {
    (True, False): ("CUSTOMER",),
    (False, True): ("SITE",),
    (True, True): ("CUSTOMER", "SITE"),
    (False, False): ("CLIENT",),
}


# Each step of a walk joins bt on `= ANY(ARRAY[walk column])` (InArrayOf): no hash or merge join can answer
# it, so the one plan left probes an index per row of the walk (parent_id on the way down, the primary key
# on the way up). A generic plan guesses ten rows per step, for which it would otherwise hash a scan of all
# of bt at every level; this way a step costs what it yields, whatever the size of bt (docs/performance.md).


def _ancestors(bu_id):
    """bu_id and its ancestors; the walk stops at a NULL parent or at the sentinel, which is not added."""

    def make(cte):
        start = BusinessUnit.objects.filter(id=bu_id).values("id", "parent_id")
        steps = (
            cte.join(BusinessUnit, InArrayOf(F("id"), cte.col.parent_id))
            .filter(~Q(Exact(cte.col.parent_id, SENTINEL_ID)))  # the stop is on the walk's row, as the function's
            .values("id", "parent_id")
        )
        return start.union(steps, all=False)

    return CTE.recursive(make, name="bu_up")


def _descendants(bu_id):
    """bu_id and its descendants."""

    def make(cte):
        start = BusinessUnit.objects.filter(id=bu_id).values("id")
        return start.union(cte.join(BusinessUnit, InArrayOf(F("parent_id"), cte.col.id)).values("id"), all=False)

    return CTE.recursive(make, name="bu_down")


def _related(bu_id, up, down):
    """(the walks, a CTE of the ids of bu_id with its ancestors and/or descendants)."""
    walks = [walk for wanted, walk in ((up, _ancestors(bu_id)), (down, _descendants(bu_id))) if wanted]
    ids = BusinessUnit.objects.filter(id=bu_id).values("id")
    if walks:
        # UNION ALL: an id may come twice (bu_id itself; a cyclic legacy tree); whoever reads the CTE
        # removes duplicates in the sort or the lookup it does anyway, rather than in one more hash.
        ids = ids.union(*(walk.queryset().values("id") for walk in walks), all=True)
    return walks, CTE(ids, name="bu_related")


def _one_value(walks, related, rows, aggregate):
    return with_cte(*walks, related, select=one_value(rows, aggregate))


def _ids_text(bu_id, up, down):
    # Sort the ids as numbers, then make text: sorting the text forms would carry wider rows through the sort.
    walks, related = _related(bu_id, up, down)
    ids = ArrayAgg("id", distinct=True, order_by="id")
    return _one_value(walks, related, related.queryset(), ArrayToString(ids, Value(" "), output_field=TextField()))


def _ids_array(bu_id, up, down):
    walks, related = _related(bu_id, up, down)
    return _one_value(walks, related, related.queryset(), ArrayAgg("id", distinct=True, order_by="id"))


def _units_object(bu_id, up, down):
    walks, related = _related(bu_id, up, down)
    units = BusinessUnit.objects.filter(EqualsAny(F("id"), ArraySubquery(related.queryset().values("id"))))
    fields = [part for name in ("bucode", "buname", "parent_id") for part in (Cast(Value(name), TextField()), F(name))]
    return _one_value(walks, related, units, Cast(JSONObjectAgg("id", JSONBuildObject(*fields)), TextField()))


_BU_LIST = {"text": CompiledQuery(_ids_text), "array": CompiledQuery(_ids_array), "jsonb": CompiledQuery(_units_object)}
_EMPTY = {"text": "", "array": [], "jsonb": None}


def bu_list(bu_id, up=True, down=True, fmt="text"):
    """The whole answer is built by the database in one statement, whatever the size of the tree."""
    fmt = fmt.lower()
    [row] = _BU_LIST[fmt].rows(("answer",), bu_id=bu_id, up=up, down=down)
    if row["answer"] is None:
        return _EMPTY[fmt]
    return json.loads(row["answer"]) if fmt == "jsonb" else row["answer"]


def _units_of_kind(bu_id, codes):
    """A top-level client's tree, filtered by identifier on the walk's own rows: no join back to bt. Each
    level probes bt's parent_id index per unit of the walk (InArrayOf) and carries the identifier along."""

    def make(cte):
        return (
            BusinessUnit.objects.filter(id=bu_id, parent_id=SENTINEL_ID)
            .values("id", "identifier_id")
            .union(
                cte.join(BusinessUnit, InArrayOf(F("parent_id"), cte.col.id)).values("id", "identifier_id"), all=False
            )
        )

    tree = CTE.recursive(make, name="bu_kind")
    kinds = TypeAssist.objects.filter(tacode__in=codes).values("id")
    ids = ArrayToString(ArrayAgg("id", order_by="id"), Value(" "), output_field=TextField())
    return _one_value([], tree, tree.queryset().filter(identifier_id__in=kinds), ids)


_UNITS_OF_KIND = CompiledQuery(_units_of_kind)


def bulist_by_identifier(bu_id, customers=True, sites=True):
    if bu_id is None:
        return ""
    codes = list(IDENTIFIER_CODES[(customers, sites)])
    [row] = _UNITS_OF_KIND.rows(("answer",), bu_id=bu_id, codes=codes)
    return row["answer"] or ""


def _sites(client_id, people_id):
    """One statement: the person *of this client* decides, in the database, which branch yields sites.

    An admin's branch is the client's tree; anyone else's is the sites of the groups written in their
    assignsitegroup plus their current site assignments. A person with another client_id (or none) is
    no admin and has no groups; their site assignments still count. Each branch is gated by an
    uncorrelated EXISTS, which PostgreSQL evaluates once: the branch not taken is never run.
    """
    person = People.objects.filter(id=people_id, client_id=client_id)
    admin = Exists(person.filter(isadmin=True))
    walks, related = _related(client_id, up=True, down=True)
    tree = related.queryset().filter(admin).values("id")
    # For anyone but an admin (whose assignsitegroup the function never reads) the groups are cast in
    # the database, so a malformed token fails exactly as PostgreSQL's integer parser fails.
    groups_cast = Cast(StringToArray(KT("people_extras__assignsitegroup"), Value(" ")), ArrayField(BigIntegerField()))
    groups = (
        person.filter(isadmin=False).annotate(group=Unnest(groups_cast, output_field=BigIntegerField())).values("group")
    )
    by_group = GroupMembership.objects.filter(pgroup_id__in=groups).values("assignsites_id")
    current = SitePeople.objects.filter(people_id=people_id, fromdt__lte=today(), uptodt__gte=today())
    assigned = current.filter(~admin).values("bu_id")
    sites = ArraySubquery(tree.union(by_group, assigned, all=True))
    units = BusinessUnit.objects.filter(EqualsAny(F("id"), sites), enable=True)
    return with_cte(*walks, related, select=units.annotate(butypename=F("butype__taname")))


_SITES = CompiledQuery(_sites)


def sites_list_web(client_id, people_id):
    return _SITES.rows(SITE_COLUMNS, client_id=client_id, people_id=people_id)
