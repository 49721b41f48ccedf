"""Hand-built legacy rows for tests, with the contract's defaults; and the agreement check."""

import itertools
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, connection

from query_backends import models as m
from query_backends.registry import REGISTRY
from rollout.shadow.judge import sides

_codes = itertools.count(1)
SENTINEL = m.SENTINEL_ID


def db_now():
    """The transaction's clock, the one both backends read."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def typeassist(tacode, taname=None):
    return m.TypeAssist.objects.get_or_create(tacode=tacode, defaults={"taname": taname or tacode.title()})[0]


def ids_of(kind, n):
    """The first n ids of the world's business units of one kind (SITE, CLIENT, ZONE…): the ids its cohort takes."""
    return sorted(
        m.BusinessUnit.objects.filter(identifier__tacode=kind).order_by("id").values_list("id", flat=True)[:n]
    )


def bu(parent=SENTINEL, kind="SITE", **fields):
    code = fields.pop("bucode", f"BU{next(_codes)}")
    identifier = typeassist(kind) if kind else None
    parent_id = parent.id if isinstance(parent, m.BusinessUnit) else parent
    return m.BusinessUnit.objects.create(
        bucode=code, buname=fields.pop("buname", code), identifier=identifier, parent_id=parent_id, **fields
    )


def person(client=None, site=None, groups="", **fields):
    extras = fields.pop("people_extras", {"assignsitegroup": groups} if groups is not None else {})
    code = f"P{next(_codes)}"
    return m.People.objects.create(
        peoplecode=code, peoplename=code, client=client, bu=site, people_extras=extras, **fields
    )


def group(client=None, kind="PEOPLEGROUP"):
    return m.PeopleGroup.objects.create(groupname=f"G{next(_codes)}", identifier=typeassist(kind), client=client)


def member(group_id, people_id=None, site=None):
    return m.GroupMembership.objects.create(pgroup_id=group_id, people_id=people_id, assignsites=site)


def jobneed(site, client, **fields):
    now = db_now()
    fields.setdefault("plandatetime", now)
    fields.setdefault("expirydatetime", fields["plandatetime"] + timedelta(hours=1) if fields["plandatetime"] else None)
    fields.setdefault("identifier", "TASK")
    fields.setdefault("jobstatus", "ASSIGNED")
    return m.JobNeed.objects.create(jobdesc=f"J{next(_codes)}", bu=site, client=client, **fields)


def asset(site, **fields):
    fields.setdefault("identifier", "ASSET")
    code = f"A{next(_codes)}"
    return m.Asset.objects.create(assetcode=code, assetname=code, bu=site, client_id=site.parent_id, **fields)


def questionset(site, includes, name="Checklist", parent=SENTINEL, **fields):
    return m.QuestionSet.objects.create(
        qsetname=name, type="CHECKLIST", parent_id=parent, bu=site, assetincludes=[str(i) for i in includes], **fields
    )


def capability(parent=None, cfor="WEB", code=None):
    return m.Capability.objects.create(capscode=code or f"C{next(_codes)}", capsname="menu", parent=parent, cfor=cfor)


def both(query, **params):
    """Run both backends in one snapshot and return (control, candidate, difference)."""
    definition = REGISTRY.get(query)
    control, candidate = (side.outcome for side in sides(definition, definition.clean(params), DEFAULT_DB_ALIAS))
    return control, candidate, definition.compare(control, candidate)


def agreed(query, **params):
    """The function's answer, after asserting the twin gives the same one."""
    control, candidate, difference = both(query, **params)
    assert difference.equal, f"{query}{params}: {difference}\n  function: {control!r}\n  twin: {candidate!r}"
    return control


def ids(rows, column="id"):
    return sorted(row[column] for row in rows)
