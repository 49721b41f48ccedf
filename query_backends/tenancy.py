"""Which legacy clients a query's parameters and its answer's rows point into: the API's tenant checks.

A business unit belongs to the client at the top of its tree (the ancestor
whose parent is the sentinel); people, assets and question sets to their
client_id; a capability to its client, or to everyone when its client is NULL
(the shared menu). An id with no row, or the sentinel, belongs to no one.

Parameters are checked before the call; rows after it, because the legacy
data links across clients (a `sitepeople` or `pgbelonging` row can tie a
person of one client to a site of another), so allowed parameters can still
reach another client's rows. A query names how its rows are owned with a
RowOwner: the column holding a client id, a business unit id or a capability id.
"""

from dataclasses import dataclass

from django.db.models import F
from django_cte import CTE, with_cte

from query_backends.models import SENTINEL_ID, Asset, BusinessUnit, Capability, People, QuestionSet

NO_ONE = None
EVERYONE = "everyone"
_UNITS = {"bu_id", "site_id", "client_id"}
_ROWS = {"people_id": People, "asset_id": Asset, "questionset_id": QuestionSet, "root_id": Capability}


def _clients_of_units(ids):
    """{unit id: its client's id}, walking every unit up its tree in one recursive query."""

    def make(cte):
        return (
            BusinessUnit.objects.filter(id__in=ids)
            .values("id", "parent_id", origin=F("id"))
            .union(
                cte.join(BusinessUnit, id=cte.col.parent_id).values("id", "parent_id", origin=cte.col.origin), all=False
            )
        )

    walk = CTE.recursive(make, name="tenant_walk")
    tops = with_cte(walk, select=walk.queryset()).filter(parent_id=SENTINEL_ID).values_list("origin", "id")
    return dict(tops)


def _owner(model, value):
    if isinstance(value, str):  # asset ids arrive as text
        value = int(value) if value.isascii() and value.isdigit() else None
    if value is None or value == SENTINEL_ID:
        return NO_ONE
    row = model.objects.filter(id=value).values_list("client_id", flat=True)
    if not row:
        return NO_ONE
    client = row[0]
    return EVERYONE if client is None and model is Capability else client


def clients_touched(params):
    """The clients (ids, or NO_ONE / EVERYONE) the cleaned parameters point into."""
    units = [v for k, v in params.items() if k in _UNITS and v is not None]
    tops = _clients_of_units(units) if units else {}
    touched = {tops.get(unit, NO_ONE) for unit in units}
    touched |= {_owner(_ROWS[k], v) for k, v in params.items() if k in _ROWS}
    return touched


def allowed(client_id, params):
    """May someone of this client ask with these parameters?"""
    return client_id is not None and clients_touched(params) <= {client_id, EVERYONE}


@dataclass(frozen=True)
class RowOwner:
    column: str
    kind: str  # "client": the column is a client id; "unit": a bt id; "capability": a capability id


def _owners(owner, values):
    """{value: its client (or NO_ONE / EVERYONE)} for the distinct values of the owning column."""
    values = {v for v in values if v is not None}
    if owner.kind == "client":
        return {v: (NO_ONE if v == SENTINEL_ID else v) for v in values}
    if owner.kind == "unit":
        return _clients_of_units(list(values)) if values else {}
    if owner.kind == "capability":
        rows = Capability.objects.filter(id__in=values).values_list("id", "client_id")
        return {cap: EVERYONE if client is None else client for cap, client in rows}
    raise ValueError(f"row owner kind {owner.kind!r} is not one of client, unit, capability")


def foreign_rows(owner, client_id, rows):
    """The indexes of the rows that belong to a client other than client_id. Rows owned by no one
    (a NULL, the sentinel, an orphan unit) or by everyone (the shared menu) are not foreign."""
    if owner is None or not isinstance(rows, list) or not rows:
        return []
    owners = _owners(owner, (row[owner.column] for row in rows))
    return [
        i for i, row in enumerate(rows) if owners.get(row[owner.column], NO_ONE) not in {client_id, NO_ONE, EVERYONE}
    ]
