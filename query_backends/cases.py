"""The parameter space of the data actually in the database: for each query, the cases validation
runs (as many as the data holds) and the samples the benchmark times (realistic ones, drawn at random).

A query's definition (registry.py) names its cases and its sampler; nothing here dispatches on query names.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Q

from query_backends.models import (
    SENTINEL_ID,
    Asset,
    BusinessUnit,
    Capability,
    GroupMembership,
    JobNeed,
    People,
    SitePeople,
)

EPSILON = timedelta(microseconds=1)


def job_cases():
    """Every person × the sites and clients they touch."""
    memberships = {}
    for person, site in SitePeople.objects.values_list("people_id", "bu_id"):
        memberships.setdefault(person, set()).add(site)
    for person, client, site in People.objects.exclude(id=SENTINEL_ID).values_list("id", "client_id", "bu_id"):
        for bu in {site, *memberships.get(person, ())} - {None}:
            yield {"people_id": person, "bu_id": bu, "client_id": client if client is not None else SENTINEL_ID}


def adhoc_cases():
    """Each open plan, at and around the edges of its window, for its person and a member of its group."""
    members = {}
    for group, person in GroupMembership.objects.exclude(pgroup_id=SENTINEL_ID).values_list("pgroup_id", "people_id"):
        members.setdefault(group, person)
    plans = JobNeed.objects.filter(
        asset_id__isnull=False,
        qset_id__isnull=False,
        plandatetime__isnull=False,
        expirydatetime__isnull=False,
        bu_id__isnull=False,
    )
    for plan in plans.values(
        "plandatetime", "gracetime", "expirydatetime", "bu_id", "people_id", "pgroup_id", "asset_id", "qset_id"
    ):
        start = plan["plandatetime"] - timedelta(minutes=plan["gracetime"])
        people = {plan["people_id"], members.get(plan["pgroup_id"])} - {None}
        for moment in (
            start - EPSILON,
            start,
            start + (plan["expirydatetime"] - start) / 2,
            plan["expirydatetime"],
            plan["expirydatetime"] + EPSILON,
        ):
            for person in people:
                yield {
                    "plandatetime": moment,
                    "bu_id": plan["bu_id"],
                    "people_id": person,
                    "asset_id": plan["asset_id"],
                    "questionset_id": plan["qset_id"],
                }


def bu_list_cases():
    for bu in BusinessUnit.objects.values_list("id", flat=True):
        for up in (True, False):
            for down in (True, False):
                for fmt in ("text", "array", "jsonb", "JSONB"):
                    yield {"bu_id": bu, "up": up, "down": down, "fmt": fmt}
    yield {"bu_id": 10**12, "up": True, "down": True, "fmt": "array"}


def bulist_by_identifier_cases():
    candidates = list(
        BusinessUnit.objects.filter(Q(parent_id=SENTINEL_ID) | Q(parent_id__isnull=True)).values_list("id", flat=True)
    )
    candidates += list(BusinessUnit.objects.exclude(parent_id=SENTINEL_ID).values_list("id", flat=True)[:5])
    for bu in [*candidates, None, 10**12]:
        for customers in (True, False):
            for sites in (True, False):
                yield {"bu_id": bu, "customers": customers, "sites": sites}


def sites_list_web_cases():
    """Every client × its people, and each person under another real client (where their groups must not count)."""
    clients = list(
        BusinessUnit.objects.filter(parent_id=SENTINEL_ID)
        .exclude(id=SENTINEL_ID)
        .order_by("id")
        .values_list("id", flat=True)
    )
    for person, client in People.objects.values_list("id", "client_id"):
        if client is not None:
            yield {"client_id": client, "people_id": person}
        others = [c for c in clients if c != client]
        yield {"client_id": others[person % len(others)] if others else SENTINEL_ID, "people_id": person}


def asset_questionset_cases():
    for asset, site in Asset.objects.values_list("id", "bu_id"):
        for kind in ("", "name", "NAME", "ids"):
            yield {"site_id": site if site is not None else SENTINEL_ID, "asset_id": str(asset), "type": kind}


def asset_details_cases():
    now = datetime.now(UTC)
    sites = Asset.objects.exclude(bu_id__isnull=True).values_list("bu_id", flat=True).distinct()
    for site in sites:
        moments = [datetime(2000, 1, 1, tzinfo=UTC), now - timedelta(days=30), now - timedelta(days=7), now]
        edge = Asset.objects.filter(bu_id=site).order_by("-mdtz").values_list("mdtz", flat=True).first()
        if edge:
            moments += [edge, edge + EPSILON]
        for moment in moments:
            yield {"mdtz": moment, "site_id": site}


def web_capability_cases():
    for cap in Capability.objects.filter(Q(parent_id__isnull=True) | Q(cfor="WEB")).values_list("id", flat=True):
        yield {"root_id": cap}
    for cap in Capability.objects.exclude(parent_id__isnull=True).values_list("id", flat=True)[:10]:
        yield {"root_id": cap}


@dataclass
class Sampling:
    """What a sampler draws from: n rows picked at random (seeded) from the loaded data, and a fixed clock."""

    n: int
    seed: int = 0
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def pick(self, sql, params=()):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return self.rng.sample(rows, min(self.n, len(rows)))


def job_samples(sampling):
    """People with plans from twelve hours ago to tomorrow, at the sites of those plans."""
    window = (sampling.now - timedelta(hours=12), sampling.now + timedelta(days=1))
    busy = """SELECT DISTINCT people_id, bu_id, client_id FROM jobneed WHERE people_id > 0 AND bu_id IS NOT NULL
              AND plandatetime BETWEEN %s AND %s LIMIT 2000"""
    return [{"people_id": p, "bu_id": b, "client_id": c} for p, b, c in sampling.pick(busy, window)]


def adhoc_samples(sampling):
    window = (sampling.now - timedelta(hours=12), sampling.now + timedelta(days=1))
    sql = """SELECT plandatetime, bu_id, people_id, asset_id, qset_id FROM jobneed
             WHERE asset_id > 0 AND qset_id > 0 AND people_id > 0 AND bu_id IS NOT NULL
               AND plandatetime BETWEEN %s AND %s LIMIT 2000"""
    return [
        {"plandatetime": t, "bu_id": b, "people_id": p, "asset_id": a, "questionset_id": q}
        for t, b, p, a, q in sampling.pick(sql, window)
    ]


def bu_list_samples(sampling):
    return [
        {"bu_id": b, "fmt": "text"} for (b,) in sampling.pick("SELECT id FROM bt WHERE parent_id = -1 OR id %% 7 = 0")
    ]


def bulist_by_identifier_samples(sampling):
    """Top-level clients with each choice of customers and sites: a world has few clients (20 on medium)."""
    clients = sampling.pick("SELECT id FROM bt WHERE parent_id = -1")
    sets = [{"bu_id": b, "customers": c, "sites": s} for (b,) in clients for c in (True, False) for s in (True, False)]
    return sampling.rng.sample(sets, min(sampling.n, len(sets)))


def sites_list_web_samples(sampling):
    sql = """SELECT client_id, id FROM people WHERE NOT isadmin AND client_id IS NOT NULL AND id > 0
             AND people_extras ->> 'assignsitegroup' ~ '^[0-9 -]+$' LIMIT 5000"""
    return [{"client_id": c, "people_id": p} for c, p in sampling.pick(sql)]


def asset_questionset_samples(sampling):
    sql = "SELECT bu_id, id::text FROM asset WHERE bu_id IS NOT NULL AND id > 0 LIMIT 5000"
    return [{"site_id": s, "asset_id": a} for s, a in sampling.pick(sql)]


def asset_details_samples(sampling):
    sites = sampling.pick("SELECT DISTINCT bu_id FROM asset WHERE bu_id IS NOT NULL")
    return [{"mdtz": sampling.now - timedelta(days=sampling.rng.choice((7, 30))), "site_id": s} for (s,) in sites]


def web_capability_samples(sampling):
    roots = sampling.pick("SELECT id FROM capability WHERE parent_id IS NULL AND cfor = 'WEB'")
    return [{"root_id": c} for (c,) in roots]
