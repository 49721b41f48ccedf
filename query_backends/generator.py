"""A realistic, deterministic legacy world, loaded with PostgreSQL COPY.

Same seed and anchor (the UTC day it is generated around) → same rows. The
legacy quirks (NULL and -1 foreign keys, NULL identifiers and statuses,
sentinel-group memberships, expired and future site assignments, malformed
assignsitegroup values, names differing only in case, plans at local-day
edges, windows spanning now) occur at the rates in QUIRK_RATES.
"""

import contextlib
import json
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.apps import apps as django_apps
from django.db import connection, transaction

from query_backends.sentinels import SENTINEL_ID, create_sentinels


@dataclass(frozen=True)
class Scale:
    clients: int
    customers_per_client: int
    sites: int
    people: int
    groups: int
    assets: int
    questionsets: int
    jobs: int
    jobneeds: int


SCALES = {
    "tiny": Scale(2, 2, 8, 120, 16, 160, 40, 60, 2_000),
    "small": Scale(4, 3, 40, 1_000, 100, 1_600, 200, 600, 20_000),
    "medium": Scale(20, 4, 400, 20_000, 2_000, 40_000, 4_000, 12_000, 500_000),
    "large": Scale(60, 5, 2_000, 100_000, 10_000, 200_000, 20_000, 60_000, 5_000_000),
}

QUIRK_RATES = {
    "jobneed.identifier_null": 0.03,
    "jobneed.jobstatus_null": 0.03,
    "jobneed.ctzoffset_legacy": 0.03,  # ctzoffset = -1
    "jobneed.people_sentinel": 0.15,
    "jobneed.people_null": 0.15,
    "jobneed.pgroup_sentinel": 0.25,
    "jobneed.pgroup_null": 0.25,
    "jobneed.local_day_edge": 0.10,
    "pgbelonging.sentinel_group": 0.04,
    "people.assignsitegroup_malformed": 0.005,
    "people.assignsitegroup_missing": 0.15,
    "people.assignsitegroup_empty": 0.10,
    "sitepeople.expired": 0.20,
    "sitepeople.future": 0.15,
    "asset.identifier_null": 0.05,
    "asset.servprov_sentinel": 0.10,
    "questionset.case_variant": 0.15,
}

OFFSETS = (-720, -600, -480, -420, -360, -300, -240, -180, 0, 60, 120, 180, 330, 345, 480, 540, 570, 600, 720, 780, 840)
JOB_IDENTIFIERS = (
    "TASK",
    "TASK",
    "TASK",
    "INTERNALTOUR",
    "EXTERNALTOUR",
    "PPM",
    "TICKET",
    "SITEREPORT",
    "INCIDENTREPORT",
)
JOB_STATUSES = ("ASSIGNED", "ASSIGNED", "INPROGRESS", "PARTIALLYCOMPLETED", "COMPLETED", "COMPLETED", "AUTOCLOSED")
ASSET_IDENTIFIERS = ("ASSET", "ASSET", "ASSET", "CHECKPOINT", "CHECKPOINT", "NEA", "SMARTPLACE", "LOCATION")
CHECKLISTS = (
    "Fire Safety",
    "Daily Rounds",
    "Électrique",
    "Pump Room",
    "HVAC Check",
    "Lift Inspection",
    "Night Patrol",
    "Generator",
    "Water Tank",
    "CCTV",
    "Access Control",
    "Housekeeping",
    "Zebra Crossing",
    "apron check",
)
CAPABILITY_ROOTS = ("WEB", "MOBILE", "REPORT", "PORTLET")

# typeassist rows, by fixed id.
TYPEASSIST = [
    (1, "CLIENT", "Client", "BVIDENTIFIER"),
    (2, "CUSTOMER", "Customer", "BVIDENTIFIER"),
    (3, "SITE", "Site", "BVIDENTIFIER"),
    (4, "ZONE", "Zone", "BVIDENTIFIER"),
    (5, "PEOPLEGROUP", "People group", "PGIDENTIFIER"),
    (6, "SITEGROUP", "Site group", "PGIDENTIFIER"),
    (7, "OFFICE", "Office", "BUTYPE"),
    (8, "MALL", "Mall", "BUTYPE"),
    (9, "PLANT", "Plant", "BUTYPE"),
    (10, "VENDOR", "Vendor", "BUTYPE"),
    (11, "PUMP", "Pump", "ASSETTYPE"),
    (12, "CHILLER", "Chiller", "ASSETTYPE"),
    (13, "ELECTRICAL", "Electrical", "ASSETCATEGORY"),
    (14, "MECHANICAL", "Mechanical", "ASSETCATEGORY"),
    (15, "ACME", "Acme", "BRAND"),
    (16, "KW", "Kilowatt", "UNIT"),
    (17, "LEAK", "Leak", "TICKETCATEGORY"),
    (18, "ROUTINE", "Routine", "REMARKSTYPE"),
]
TA_CLIENT, TA_CUSTOMER, TA_SITE, TA_ZONE, TA_PEOPLEGROUP, TA_SITEGROUP = 1, 2, 3, 4, 5, 6
BUTYPES, TA_VENDOR = (7, 8, 9), 10

# A bound for one statement of a load (a COPY, ANALYZE), not for the request path.
LOAD_STATEMENT_TIMEOUT = "15min"

# Loaded in this order; emptied in reverse.
LEGACY_TABLES = (
    "typeassist",
    "bt",
    "people",
    "pgroup",
    "pgbelonging",
    "sitepeople",
    "asset",
    "questionset",
    "job",
    "jobneed",
    "jobneeddetails",
    "capability",
)


class World:
    """Builds the rows of every legacy table from one random stream."""

    def __init__(self, scale: Scale, seed: int, anchor: date):
        self.scale = scale
        self.rng = random.Random(seed)
        self.anchor = anchor
        self.noon = datetime.combine(anchor, time(12), tzinfo=UTC)

    def chance(self, name):
        return self.rng.random() < QUIRK_RATES[name]

    def stamp(self, days_back=400):
        moment = self.noon - timedelta(minutes=self.rng.randrange(days_back * 1440))
        return moment, moment + timedelta(minutes=self.rng.randrange(1440))

    def uuid(self):
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def pick(self, values, null=0.0, sentinel=0.0):
        roll = self.rng.random()
        if roll < null:
            return None
        if roll < null + sentinel:
            return SENTINEL_ID
        return self.rng.choice(values) if values else None

    # --- business units -------------------------------------------------------------------
    def business_units(self):
        rows, s = [], self.scale
        self.clients, self.sites, self.vendors = [], [], {}
        self.site_client, self.site_offset, self.client_sites = {}, {}, {}
        next_id = iter(range(1, 10**9))

        def add(parent, identifier, code, name, offset, butype=None):
            bu_id = next(next_id)
            cdtz, mdtz = self.stamp()
            enable = self.rng.random() > 0.05
            user = self.pick([], null=0.5, sentinel=0.5)
            rows.append((bu_id, code, name, identifier, butype, parent, enable, offset, user, user, cdtz, mdtz))
            return bu_id

        sites_per_client = max(1, s.sites // s.clients)
        for c in range(s.clients):
            client = add(SENTINEL_ID, TA_CLIENT, f"CL{c:03d}", f"Client {c}", 0)
            self.clients.append(client)
            self.client_sites[client] = []
            self.vendors[client] = [
                add(client, None, f"SP{c:03d}{v}", f"Service provider {c}.{v}", 0, TA_VENDOR) for v in range(2)
            ]
            customers = [
                add(client, TA_CUSTOMER, f"CU{c:03d}{k}", f"Customer {c}.{k}", 0, self.pick(BUTYPES, null=0.1))
                for k in range(s.customers_per_client)
            ]
            for k in range(sites_per_client):
                parent = self.rng.choice(customers) if self.rng.random() < 0.8 else client
                offset = SENTINEL_ID if self.rng.random() < 0.03 else self.rng.choice(OFFSETS)
                code = f"SI{c:03d}{k:03d}"
                site = add(parent, TA_SITE, code, f"Site {code}", offset, self.pick(BUTYPES, null=0.1))
                self.sites.append(site)
                self.client_sites[client].append(site)
                self.site_client[site], self.site_offset[site] = client, offset
                parent_zone = site
                for depth in range(self.rng.randrange(0, 4)):
                    identifier = None if self.rng.random() < 0.05 else TA_ZONE
                    parent_zone = add(parent_zone, identifier, f"ZN{code}{depth}", f"Zone {code}/{depth}", offset)
        return rows

    # --- people and groups ------------------------------------------------------------------
    def people(self):
        rows, s = [], self.scale
        self.client_people = {c: [] for c in self.clients}
        self.person_client = {}
        for person_id in range(1, s.people + 1):
            client = self.rng.choice(self.clients)
            self.client_people[client].append(person_id)
            self.person_client[person_id] = client
        self.people_groups, self.site_groups, self.group_client = (
            {c: [] for c in self.clients},
            {c: [] for c in self.clients},
            {},
        )
        group_rows = []
        for group_id in range(1, s.groups + 1):
            client = self.rng.choice(self.clients)
            is_site_group = self.rng.random() < 0.4
            (self.site_groups if is_site_group else self.people_groups)[client].append(group_id)
            self.group_client[group_id] = client
            cdtz, mdtz = self.stamp()
            group_rows.append(
                (
                    group_id,
                    f"{'Sites' if is_site_group else 'Team'} {group_id}",
                    TA_SITEGROUP if is_site_group else TA_PEOPLEGROUP,
                    client,
                    self.rng.choice(self.client_sites[client]),
                    self.rng.random() > 0.05,
                    cdtz,
                    mdtz,
                )
            )
        for person_id in range(1, s.people + 1):
            client = self.person_client[person_id]
            cdtz, mdtz = self.stamp()
            rows.append(
                (
                    person_id,
                    f"P{person_id:06d}",
                    f"Person {person_id}",
                    None if self.rng.random() < 0.05 else f"user{person_id}",
                    self.rng.random() < 0.03,
                    self.rng.random() > 0.04,
                    None if self.rng.random() < 0.02 else client,
                    self.pick(self.client_sites[client], null=0.05, sentinel=0.03),
                    json.dumps(self.people_extras(client, force_malformed=person_id == 7), sort_keys=True),
                    cdtz,
                    mdtz,
                )
            )
        return rows, group_rows

    def people_extras(self, client, force_malformed=False):
        # One person is always malformed so even the tiny world exercises the legacy failure.
        if force_malformed:
            return {"assignsitegroup": "3 x7"}
        if self.chance("people.assignsitegroup_missing"):
            return {"mobilecapability": ["TOUR"]}
        if self.chance("people.assignsitegroup_empty"):
            return {"assignsitegroup": ""}
        if self.chance("people.assignsitegroup_malformed"):
            return {"assignsitegroup": self.rng.choice(("12 x3", "4  5", "7,8", "none"))}
        groups = self.site_groups[client] + [SENTINEL_ID]
        chosen = self.rng.sample(groups, k=min(len(groups), self.rng.randrange(1, 4)))
        return {"assignsitegroup": " ".join(map(str, chosen))}

    def memberships(self):
        rows, next_id = [], iter(range(1, 10**9))
        for person_id, client in self.person_client.items():
            for _ in range(self.rng.randrange(0, 3)):
                if self.chance("pgbelonging.sentinel_group"):
                    group = SENTINEL_ID
                else:
                    group = self.pick(self.people_groups[client], null=0.01)
                cdtz, mdtz = self.stamp()
                rows.append((next(next_id), group, person_id, None, self.rng.random() < 0.1, client, None, cdtz, mdtz))
        for client, groups in self.site_groups.items():
            for group in groups:
                for site in self.rng.sample(self.client_sites[client], k=min(3, len(self.client_sites[client]))):
                    cdtz, mdtz = self.stamp()
                    people = self.pick([], null=0.5, sentinel=0.5)
                    rows.append((next(next_id), group, people, site, False, client, site, cdtz, mdtz))
        return rows

    def site_people(self):
        rows, next_id = [], iter(range(1, 10**9))
        for person_id, client in self.person_client.items():
            for _ in range(self.rng.randrange(0, 3)):
                if self.chance("sitepeople.expired"):
                    start = self.anchor - timedelta(days=self.rng.randrange(60, 400))
                    end = self.anchor - timedelta(days=self.rng.randrange(1, 59))
                elif self.chance("sitepeople.future"):
                    start = self.anchor + timedelta(days=self.rng.randrange(1, 30))
                    end = start + timedelta(days=self.rng.randrange(30, 300))
                else:
                    start = self.anchor - timedelta(days=self.rng.randrange(0, 300))
                    end = self.anchor + timedelta(days=self.rng.randrange(0, 300))
                site = self.rng.choice(self.client_sites[client])
                rows.append((next(next_id), person_id, site, client, start, end))
        return rows

    # --- assets and checklists ----------------------------------------------------------------
    def assets(self):
        rows, s = [], self.scale
        self.site_assets = {site: [] for site in self.sites}
        for asset_id in range(1, s.assets + 1):
            site = self.rng.choice(self.sites)
            client = self.site_client[site]
            parent = (
                self.rng.choice(self.site_assets[site]) if self.site_assets[site] and self.rng.random() < 0.2 else None
            )
            self.site_assets[site].append(asset_id)
            servprov = (
                SENTINEL_ID if self.chance("asset.servprov_sentinel") else self.pick(self.vendors[client], null=0.3)
            )
            identifier = None if self.chance("asset.identifier_null") else self.rng.choice(ASSET_IDENTIFIERS)
            cdtz = self.noon - timedelta(days=self.rng.randrange(30, 900))
            mdtz = self.noon - timedelta(minutes=self.rng.randrange(90 * 1440))
            capacity = None if self.rng.random() < 0.3 else Decimal(self.rng.randrange(0, 10**6)) / 100
            user = self.pick(self.client_people[client], null=0.3, sentinel=0.2)
            rows.append(
                (
                    asset_id,
                    self.uuid(),
                    f"A{asset_id:06d}",
                    f"Asset {asset_id}",
                    self.rng.random() > 0.08,
                    self.rng.random() < 0.1,
                    parent,
                    self.rng.choice(("WORKING", "STANDBY", "MAINTENANCE", None)),
                    identifier,
                    self.rng.choice((11, 12, None)),
                    self.rng.choice((13, 14, None)),
                    None,
                    self.rng.choice((15, None)),
                    self.rng.choice((16, None)),
                    capacity,
                    servprov,
                    self.rng.randrange(1, 5000) if self.rng.random() < 0.5 else None,
                    site,
                    client,
                    self.site_offset[site],
                    user,
                    user,
                    cdtz,
                    mdtz,
                )
            )
        return rows

    def questionsets(self):
        rows, s = [], self.scale
        self.site_questionsets = {site: [] for site in self.sites}
        for qset_id in range(1, s.questionsets + 1):
            site = self.rng.choice(self.sites)
            roll = self.rng.random()
            if roll < 0.10 and self.site_questionsets[site]:
                parent = self.rng.choice(self.site_questionsets[site])
            else:
                parent = None if roll < 0.15 else SENTINEL_ID
            self.site_questionsets[site].append(qset_id)
            name = self.rng.choice(CHECKLISTS)
            if self.chance("questionset.case_variant"):
                name = self.rng.choice((name.lower(), name.upper()))
            pool = self.site_assets[site]
            includes = [str(a) for a in self.rng.sample(pool, k=min(len(pool), self.rng.randrange(1, 9)))]
            if self.rng.random() < 0.05:
                includes.append(str(self.rng.randrange(1, self.scale.assets + 1)))
            cdtz, mdtz = self.stamp()
            rows.append(
                (
                    qset_id,
                    name,
                    self.rng.choice(("CHECKLIST", "ASSETMAINTENANCE", "QUESTIONSET")),
                    parent,
                    self.rng.random() > 0.05,
                    None if self.rng.random() < 0.02 else includes,
                    site,
                    self.site_client[site],
                    cdtz,
                    mdtz,
                )
            )
        return rows

    def jobs(self):
        rows = []
        self.site_jobs = {site: [] for site in self.sites}
        for job_id in range(1, self.scale.jobs + 1):
            site = self.rng.choice(self.sites)
            client = self.site_client[site]
            self.site_jobs[site].append(job_id)
            cdtz, mdtz = self.stamp()
            rows.append(
                (
                    job_id,
                    f"Job {job_id}",
                    f"Scheduled job {job_id}",
                    self.rng.choice(JOB_IDENTIFIERS),
                    self.pick(self.site_assets[site], null=0.3),
                    self.pick(self.site_questionsets[site], null=0.3),
                    self.pick(self.client_people[client], null=0.3),
                    self.pick(self.people_groups[client], null=0.5),
                    site,
                    client,
                    self.noon - timedelta(days=90),
                    self.noon + timedelta(days=365),
                    self.rng.choice((30, 60, 120)),
                    self.rng.choice((0, 5, 15, 30)),
                    self.rng.choice((0, 60, 240)),
                    self.rng.choice(("HIGH", "MEDIUM", "LOW")),
                    self.rng.choice(("QR", "NFC", "SKIP")),
                    self.rng.choice(("DAILY", "WEEKLY", "MONTHLY")),
                    True,
                    cdtz,
                    mdtz,
                )
            )
        return rows

    # --- jobneeds: the bulk -------------------------------------------------------------------
    def plan_time(self, offset):
        if self.chance("jobneed.local_day_edge"):
            local_midnight = datetime.combine(self.anchor + timedelta(days=self.rng.randrange(-1, 3)), time(), UTC)
            return local_midnight - timedelta(minutes=offset) + timedelta(minutes=self.rng.choice((-2, -1, 0, 1)))
        return self.noon + timedelta(minutes=self.rng.randrange(-4 * 1440, 4 * 1440))

    def jobneeds(self):
        rng, sites = self.rng, self.sites
        for jobneed_id in range(1, self.scale.jobneeds + 1):
            site = rng.choice(sites)
            client = self.site_client[site]
            people = self.client_people[client]
            offset = SENTINEL_ID if self.chance("jobneed.ctzoffset_legacy") else self.site_offset[site]
            plan = None if rng.random() < 0.02 else self.plan_time(offset)
            expiry = (
                None
                if plan is None or rng.random() < 0.01
                else plan + timedelta(minutes=rng.choice((30, 60, 240, 1440, 2880)))
            )
            status = None if self.chance("jobneed.jobstatus_null") else rng.choice(JOB_STATUSES)
            identifier = None if self.chance("jobneed.identifier_null") else rng.choice(JOB_IDENTIFIERS)
            person = self.pick(
                people, null=QUIRK_RATES["jobneed.people_null"], sentinel=QUIRK_RATES["jobneed.people_sentinel"]
            )
            group = self.pick(
                self.people_groups[client],
                null=QUIRK_RATES["jobneed.pgroup_null"],
                sentinel=QUIRK_RATES["jobneed.pgroup_sentinel"],
            )
            user = self.pick(people, sentinel=0.6)
            started = plan is not None and status in ("INPROGRESS", "COMPLETED", "PARTIALLYCOMPLETED")
            other_info = {"istimebound": rng.random() < 0.5} if rng.random() < 0.6 else {}
            yield (
                jobneed_id,
                self.uuid(),
                f"Jobneed {jobneed_id}",
                plan,
                expiry,
                rng.choice((0, 5, 15, 30, 60)),
                plan + timedelta(minutes=5) if started else None,
                plan if started else None,
                plan + timedelta(minutes=20) if started and status == "COMPLETED" else None,
                "checked" if rng.random() < 0.1 else None,
                self.noon - timedelta(days=5),
                self.noon - timedelta(days=1),
                group,
                self.pick(self.site_assets[site], null=0.4, sentinel=0.1),
                user,
                user,
                None,
                person,
                rng.choice(("DAILY", "WEEKLY", None)),
                self.pick(self.site_jobs[site], null=0.3),
                status,
                rng.choice(("SCHEDULE", "SCHEDULE", "SCHEDULE", "ADHOC", None)),
                rng.choice(("HIGH", "MEDIUM", "LOW")),
                self.pick(self.site_questionsets[site], null=0.4, sentinel=0.1),
                rng.choice(("QR", "NFC", "SKIP", None)),
                rng.randrange(0, 4),
                identifier,
                None,
                None if rng.random() < 0.01 else site,
                client,
                rng.randrange(0, 50),
                17 if identifier == "TICKET" else None,
                offset,
                Decimal(rng.randrange(1, 10**7)) / 10**6,
                json.dumps(other_info),
                rng.randrange(1, 10**6) if identifier == "TICKET" else None,
                18 if rng.random() < 0.2 else None,
            )

    def jobneed_details(self):
        for detail_id in range(1, self.scale.jobneeds // 5 + 1):
            yield (
                detail_id,
                self.rng.randrange(1, self.scale.jobneeds + 1),
                self.rng.randrange(1, 10),
                self.rng.randrange(1, 10**6),
                self.rng.choice(("NUMERIC", "CHECKBOX", "SINGLELINE")),
                self.rng.choice(("1", "yes", None)),
                self.rng.random() < 0.5,
                self.noon,
                self.noon,
            )

    def capabilities(self):
        rows, next_id = [], iter(range(1, 10**9))
        for client in [None, *self.clients]:
            for cfor in CAPABILITY_ROOTS:
                root = next(next_id)
                code = f"{cfor}_{client or 'ALL'}"
                rows.append((root, code, f"{cfor.title()} menu", None, cfor, client, True, self.noon, self.noon))
                frontier = [root]
                for _ in range(self.rng.randrange(4, 14)):
                    parent = self.rng.choice(frontier)
                    cap = next(next_id)
                    child_for = cfor if self.rng.random() < 0.85 else self.rng.choice(CAPABILITY_ROOTS)
                    name = None if self.rng.random() < 0.05 else f"Menu item {cap}"
                    rows.append(
                        (
                            cap,
                            f"{code}_{cap}",
                            name,
                            parent,
                            child_for,
                            client,
                            self.rng.random() > 0.1,
                            self.noon,
                            self.noon,
                        )
                    )
                    frontier.append(cap)
        return rows


COLUMNS = {
    "typeassist": "id, tacode, taname, tatype, enable",
    "bt": "id, bucode, buname, identifier_id, butype_id, parent_id, enable, ctzoffset, cuser_id, muser_id, cdtz, mdtz",
    "people": "id, peoplecode, peoplename, loginid, isadmin, enable, client_id, bu_id, people_extras, cdtz, mdtz",
    "pgroup": "id, groupname, identifier_id, client_id, bu_id, enable, cdtz, mdtz",
    "pgbelonging": "id, pgroup_id, people_id, assignsites_id, isgrouplead, client_id, bu_id, cdtz, mdtz",
    "sitepeople": "id, people_id, bu_id, client_id, fromdt, uptodt",
    "asset": (
        "id, uuid, assetcode, assetname, enable, iscritical, parent_id, runningstatus, identifier, type_id, "
        "category_id, subcategory_id, brand_id, unit_id, capacity, servprov_id, location_id, bu_id, client_id, "
        "ctzoffset, cuser_id, muser_id, cdtz, mdtz"
    ),
    "questionset": "id, qsetname, type, parent_id, enable, assetincludes, bu_id, client_id, cdtz, mdtz",
    "job": (
        "id, jobname, jobdesc, identifier, asset_id, qset_id, people_id, pgroup_id, bu_id, client_id, fromdate, "
        "uptodate, planduration, gracetime, expirytime, priority, scantype, frequency, enable, cdtz, mdtz"
    ),
    "jobneed": (
        "id, uuid, jobdesc, plandatetime, expirydatetime, gracetime, receivedonserver, starttime, endtime, remarks, "
        "cdtz, mdtz, pgroup_id, asset_id, cuser_id, muser_id, performedby_id, people_id, frequency, job_id, "
        "jobstatus, jobtype, priority, qset_id, scantype, attachmentcount, identifier, parent_id, bu_id, client_id, "
        "seqno, ticketcategory_id, ctzoffset, multifactor, other_info, ticket_id, remarkstype_id"
    ),
    "jobneeddetails": "id, jobneed_id, seqno, question_id, answertype, answer, ismandatory, cdtz, mdtz",
    "capability": "id, capscode, capsname, parent_id, cfor, client_id, enable, cdtz, mdtz",
}


def legacy_rows_exist():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM bt WHERE id <> %s) OR EXISTS (SELECT 1 FROM typeassist)", [SENTINEL_ID]
        )
        return cursor.fetchone()[0]


def reset():
    """Empty the legacy tables, keeping (re-creating) the sentinel rows."""
    with transaction.atomic(), connection.cursor() as cursor:
        _empty(cursor)


def _empty(cursor):
    # Fire FK checks still pending in an enclosing transaction: TRUNCATE refuses to run past them.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"TRUNCATE {', '.join(LEGACY_TABLES)} RESTART IDENTITY")
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    create_sentinels(django_apps)


@contextlib.contextmanager
def _without_foreign_keys_and_indexes(cursor):
    """Drop the legacy tables' foreign keys and plain indexes for the block; re-create them after it.

    Row by row, the deferred FK checks of a COPY cost one lookup per row and key (millions on large) and
    every index is maintained insert by insert; re-created afterwards, each key is validated by one join
    and each index built in one sort. It all happens in the load's transaction: a failure restores them.
    """
    tables = list(LEGACY_TABLES)
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses to run past pending FK checks
    cursor.execute(
        "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY oid",
        [tables],
    )
    keys = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[]) AND NOT indisunique ORDER BY indexrelid",
        [tables],
    )
    indexes = cursor.fetchall()
    for table, name, _ in keys:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    yield
    for _, definition in indexes:
        cursor.execute(definition)
    for table, name, definition in keys:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")


@contextlib.contextmanager
def _statement_timeout(cursor, timeout):
    """SET LOCAL statement_timeout for the block; the caller's value afterwards."""
    cursor.execute("SELECT current_setting('statement_timeout')")
    before = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [timeout])
    yield
    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])


def _copy(cursor, table, rows, progress=None, freeze=True):
    """COPY the rows; returns how many. The count is kept here, not by the progress bar: a bar that is off
    (output not a terminal) counts nothing."""
    # FREEZE only into a table emptied in this transaction (a world's load); shapes add to the data present.
    written = 0
    with cursor.cursor.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN{' WITH (FREEZE)' if freeze else ''}") as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
            if progress is not None:
                progress.update(1)
    return written


def load(scale_name, seed=0, anchor=None, progress_factory=None):
    """Generate and COPY a world. Returns {table: rows loaded}."""
    from tqdm import tqdm

    scale = SCALES[scale_name]
    world = World(scale, seed, anchor or datetime.now(UTC).date())
    progress_factory = progress_factory or (
        lambda table, total: tqdm(total=total, desc=f"{table:>15}", unit="row", file=sys.stderr, disable=None)
    )
    people_rows, group_rows = None, None

    def tables():
        nonlocal people_rows, group_rows
        yield "typeassist", [(i, code, name, kind, True) for i, code, name, kind in TYPEASSIST], None
        yield "bt", world.business_units(), None
        people_rows, group_rows = world.people()
        yield "people", people_rows, None
        yield "pgroup", group_rows, None
        yield "pgbelonging", world.memberships(), None
        yield "sitepeople", world.site_people(), None
        yield "asset", world.assets(), None
        yield "questionset", world.questionsets(), None
        yield "job", world.jobs(), None
        yield "jobneed", world.jobneeds(), scale.jobneeds
        yield "jobneeddetails", world.jobneed_details(), scale.jobneeds // 5
        yield "capability", world.capabilities(), None

    counts = {}
    # The load's own statement_timeout: one COPY of jobneed runs for minutes on large, far past the
    # request-sized DB_STATEMENT_TIMEOUT_MS every connection starts with.
    with transaction.atomic(), connection.cursor() as cursor, _statement_timeout(cursor, LOAD_STATEMENT_TIMEOUT):
        if legacy_rows_exist():
            raise ValueError("the legacy tables already hold data: reset() them first")
        # Emptied in this transaction, the tables load into fresh files: a failed load leaves its rows in
        # files that are discarded whole (no dead tuples, no bloat), and COPY FREEZE writes rows already
        # frozen, so no VACUUM pass has to rewrite the pages later.
        with _without_foreign_keys_and_indexes(cursor):
            _empty(cursor)
            for table, rows, total in tables():
                with progress_factory(table, total if total is not None else len(rows)) as progress:
                    counts[table] = _copy(cursor, table, rows, progress)
        for table in LEGACY_TABLES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT max(id) FROM {table}), 1))"
            )
        # Every cached answer is retired by the generation triggers (migration 0020) when this commits.
    with transaction.atomic(), connection.cursor() as cursor, _statement_timeout(cursor, LOAD_STATEMENT_TIMEOUT):
        cursor.execute(f"ANALYZE {', '.join(LEGACY_TABLES)}")
    return counts


def table_checksums():
    """md5 of every legacy table's rows in id order: equal checksums, equal data."""
    sums = {}
    with connection.cursor() as cursor:
        for table in LEGACY_TABLES:
            cursor.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t")
            sums[table] = cursor.fetchone()
    return sums


# --- shapes: one big client tree or one big site, in seconds --------------------------------------
SHAPES = ("bu-tree", "site-assets")
TREE_FANOUT = 8  # children per unit: 200,000 units are 6 levels deep


def _next_ids(cursor, table, count):
    cursor.execute(f"SELECT GREATEST(max(id), 0) + 1 FROM {table}")
    first = cursor.fetchone()[0]
    return range(first, first + count)


def _load_shape(build):
    """COPY the rows build(cursor) yields per table in one transaction; ids continue after the data present."""
    counts = {}
    with transaction.atomic(), connection.cursor() as cursor, _statement_timeout(cursor, LOAD_STATEMENT_TIMEOUT):
        cursor.executemany(
            "INSERT INTO typeassist (id, tacode, taname, tatype, enable) VALUES (%s, %s, %s, %s, true) "
            "ON CONFLICT (id) DO NOTHING",
            TYPEASSIST,
        )
        answer = build(cursor, counts)
        for table in counts:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # Cached answers are retired by the generation triggers when this commits, as for a world's load.
        cursor.execute(f"ANALYZE {', '.join(counts)}")
    return answer, counts


def _copy_counted(cursor, table, rows, counts):
    counts[table] = counts.get(table, 0) + _copy(cursor, table, rows, freeze=False)


def bu_tree(units, seed=0):
    """A client with `units` business units in all (itself included), TREE_FANOUT children per unit, plus an
    admin and a non-admin person of that client.

    Returns ({"client_id", "admin_id", "person_id", "id_ranges": ((table, first id, last id), …)}, counts);
    deleting the id ranges in that order removes the shape."""
    if units < 1:
        raise ValueError("bu-tree: units must be at least 1")
    rng, noon = random.Random(seed), datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC)

    def build(cursor, counts):
        ids = _next_ids(cursor, "bt", units)
        kinds = {1: TA_CUSTOMER, 2: TA_SITE}

        depths = []  # of each unit by position: the identifier follows the level

        def rows():
            for i, bu_id in enumerate(ids):
                parent = SENTINEL_ID if i == 0 else ids[(i - 1) // TREE_FANOUT]
                depth = 0 if i == 0 else depths[(i - 1) // TREE_FANOUT] + 1
                depths.append(depth)
                identifier = TA_CLIENT if i == 0 else kinds.get(depth, TA_ZONE)
                butype = rng.choice((*BUTYPES, None))
                enable = i == 0 or rng.random() > 0.05
                yield (
                    bu_id,
                    f"T{bu_id}",
                    f"Tree unit {bu_id}",
                    identifier,
                    butype,
                    parent,
                    enable,
                    0,
                    None,
                    None,
                    noon,
                    noon,
                )

        _copy_counted(cursor, "bt", rows(), counts)
        admin, person = _next_ids(cursor, "people", 2)
        people = [
            (
                pid,
                f"T{pid}",
                f"Tree person {pid}",
                None,
                pid == admin,
                True,
                ids[0],
                ids[0],
                json.dumps({"assignsitegroup": ""}),
                noon,
                noon,
            )
            for pid in (admin, person)
        ]
        _copy_counted(cursor, "people", people, counts)
        ranges = (("people", admin, person), ("bt", ids[0], ids[-1]))
        return {"client_id": ids[0], "admin_id": admin, "person_id": person, "id_ranges": ranges}

    return _load_shape(build)


def site_assets(assets, seed=0, questionsets=None):
    """A client with one site holding `assets` assets (a few NEA, disabled, NULL identifiers, the rest changed in
    the last 90 days) and top-level checklists including some of them.

    Returns ({"client_id", "site_id", "id_ranges"}, counts), as bu_tree does."""
    if assets < 1:
        raise ValueError("site-assets: assets must be at least 1")
    rng, noon = random.Random(seed), datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC)
    questionsets = max(1, assets // 50) if questionsets is None else questionsets

    def build(cursor, counts):
        client, site, vendor = _next_ids(cursor, "bt", 3)
        units = [
            (
                client,
                f"S{client}",
                f"Shape client {client}",
                TA_CLIENT,
                None,
                SENTINEL_ID,
                True,
                0,
                None,
                None,
                noon,
                noon,
            ),
            (site, f"S{site}", f"Shape site {site}", TA_SITE, BUTYPES[0], client, True, 330, None, None, noon, noon),
            (vendor, f"S{vendor}", f"Shape vendor {vendor}", None, TA_VENDOR, client, True, 0, None, None, noon, noon),
        ]
        _copy_counted(cursor, "bt", units, counts)
        asset_ids = _next_ids(cursor, "asset", assets)

        def asset_rows():
            for asset_id in asset_ids:
                identifier = None if rng.random() < 0.05 else rng.choice(ASSET_IDENTIFIERS)
                mdtz = noon - timedelta(minutes=rng.randrange(90 * 1440))
                yield (
                    asset_id,
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    f"SA{asset_id}",
                    f"Shape asset {asset_id}",
                    rng.random() > 0.08,
                    rng.random() < 0.1,
                    None,
                    rng.choice(("WORKING", "STANDBY", None)),
                    identifier,
                    rng.choice((11, 12, None)),
                    rng.choice((13, 14, None)),
                    None,
                    rng.choice((15, None)),
                    rng.choice((16, None)),
                    Decimal(rng.randrange(0, 10**6)) / 100 if rng.random() < 0.7 else None,
                    rng.choice((vendor, SENTINEL_ID, None)),
                    None,
                    site,
                    client,
                    330,
                    None,
                    None,
                    mdtz - timedelta(days=30),
                    mdtz,
                )

        _copy_counted(cursor, "asset", asset_rows(), counts)
        qset_ids = _next_ids(cursor, "questionset", questionsets)

        def qset_rows():
            for qset_id in qset_ids:
                includes = [str(a) for a in rng.sample(asset_ids, k=min(assets, rng.randrange(1, 9)))]
                name = rng.choice(CHECKLISTS)
                yield (qset_id, name, "CHECKLIST", SENTINEL_ID, True, includes, site, client, noon, noon)

        _copy_counted(cursor, "questionset", qset_rows(), counts)
        ranges = (
            ("questionset", qset_ids[0], qset_ids[-1]),
            ("asset", asset_ids[0], asset_ids[-1]),
            ("bt", client, vendor),
        )
        return {"client_id": client, "site_id": site, "id_ranges": ranges}

    return _load_shape(build)


def parse_shape(spec):
    """(kind, N) of `kind:N` as the commands' --shape takes it: bu-tree:200000 or site-assets:50000."""
    kind, _, size = spec.partition(":")
    if kind not in SHAPES or not size.isdigit() or int(size) < 1:
        raise ValueError(f"--shape: {spec!r} is not one of {', '.join(f'{s}:N' for s in SHAPES)} with N ≥ 1")
    return kind, int(size)


def load_shape(spec, seed=0):
    kind, size = parse_shape(spec)
    return (bu_tree if kind == "bu-tree" else site_assets)(size, seed=seed)
