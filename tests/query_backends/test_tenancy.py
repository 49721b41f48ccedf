"""The tenant wall: whatever the legacy data links across clients, an API answer holds no part of another client.

Random small worlds of two clients, A (the caller's) and B, where every link the
schema allows may cross from one to the other: a row's references (people,
groups, assets, checklists, jobs, jobneeds, capabilities, units), B's rows
placed on A's sites, A's rows placed on B's, checklist ids and names packed
into text, capability paths. B's rows have ids from B_BASE up and names holding
MARK, so a leak is found by looking, independently of how the wall is declared.
Every query, asked by A's user for A's parameters, through both backends.
"""

import itertools
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_backends import models as m
from query_backends.registry import REGISTRY
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import ApiToken
from tests.conftest import rolled_back
from tests.legacy_world import db_now, typeassist

pytestmark = pytest.mark.django_db
B_BASE = 9_100_000
MARK = "ZQXB"
SENTINEL = m.SENTINEL_ID
SINCE = "2000-01-01T00:00:00+00:00"
EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
# The queries whose answers can name another client's rows, and the ones that cannot (a tree is one client's).
CAN_LEAK = {
    "job_needs",
    "external_tour_job_needs",
    "schedule_for_adhoc",
    "sites_list_web",
    "asset_questionsets",
    "asset_details",
    "web_capabilities",
}


class World:
    """Two clients' rows; `pick(label, a, b)` decides, for every link, which client's row it names."""

    def __init__(self, pick):
        self.pick = pick
        self.b_ids = itertools.count(B_BASE + 1)
        self.now = db_now()

    def of_b(self, model, **fields):
        return model.objects.create(id=next(self.b_ids), **fields)

    def build(self):
        pick, now = self.pick, self.now
        site_kind, client_kind = typeassist("SITE"), typeassist("CLIENT")
        bt = {"identifier": site_kind, "enable": True}
        a = m.BusinessUnit.objects.create(bucode="CA", buname="client A", identifier=client_kind, parent_id=SENTINEL)
        sa = m.BusinessUnit.objects.create(bucode="SA", buname="site A", parent=a, **bt)
        b = self.of_b(
            m.BusinessUnit, bucode=f"{MARK}C", buname=f"{MARK} client", identifier=client_kind, parent_id=SENTINEL
        )
        sb = self.of_b(m.BusinessUnit, bucode=f"{MARK}S", buname=f"{MARK} site", parent=b, **bt)
        self.a, self.sa = a, sa
        pb = self.of_b(m.People, peoplecode=f"{MARK}P", peoplename=f"{MARK} person", client=b, bu=sb)
        ga = m.PeopleGroup.objects.create(groupname="group A", client=a)
        gb = self.of_b(m.PeopleGroup, groupname=f"{MARK} group", client=b)
        self.pa = pa = m.People.objects.create(
            peoplecode="PA",
            peoplename="person A",
            loginid=f"tenant-a-{next(self.b_ids)}",
            client=a,
            bu=sa,
            isadmin=pick("admin", False, True),
            people_extras={"assignsitegroup": f"{ga.id} {gb.id}"},
        )
        # The units' creators, and a person of A's placed on B's site.
        m.BusinessUnit.objects.filter(id__in=[a.id, sa.id]).update(cuser=pick("bt cuser", pa, pb), muser=pa)
        m.BusinessUnit.objects.filter(id__in=[b.id, sb.id]).update(cuser=pb, muser=pick("bt muser", pa, pb))
        for group in (ga, gb):
            m.GroupMembership.objects.create(pgroup=group, people=pa, assignsites=pick("assigned site", sa, sb))
        today = now.date()
        m.SitePeople.objects.create(people=pa, bu=pick("dated site", sa, sb), client=a, fromdt=today, uptodt=today)

        def asset(owner, **fields):
            make = self.of_b if owner is b else (lambda model, **f: model.objects.create(**f))
            code = f"{MARK}A" if owner is b else "AA"
            return make(
                m.Asset, assetcode=code, assetname=f"{code} asset", identifier="ASSET", client=owner, mdtz=now, **fields
            )

        ab = asset(b, bu=pick("B's asset site", sa, sb), servprov=sb, cuser=pb)
        self.aa = asset(
            a,
            bu=sa,
            parent=pick("asset parent", None, ab),
            servprov=pick("service provider", sa, sb),
            cuser=pick("asset cuser", pa, pb),
            muser=pick("asset muser", pa, pb),
        )
        includes = [str(self.aa.id), str(ab.id)]
        qset = {"parent_id": SENTINEL, "type": "CHECKLIST", "assetincludes": includes}
        qa = m.QuestionSet.objects.create(qsetname="checklist A", bu=sa, client=a, **qset)
        qb_name = pick("B's checklist name", f"{MARK} checklist", "checklist A")  # a name both clients use
        qb = self.of_b(m.QuestionSet, qsetname=qb_name, bu=pick("B's checklist site", sa, sb), client=b, **qset)
        self.of_b(m.QuestionSet, qsetname=f"{MARK} ~ with a tilde", bu=sa, client=b, **qset)
        self.qa = qa
        ja = m.Job.objects.create(jobname="job A", jobdesc="job A", client=a, bu=sa)
        jb = self.of_b(m.Job, jobname=f"{MARK} job", jobdesc=f"{MARK} job", client=b, bu=sb)
        jnb = self.of_b(
            m.JobNeed,
            jobdesc=f"{MARK} jobneed",
            plandatetime=now - timedelta(minutes=pick("B's jobneed plan", 5, 1)),
            expirydatetime=now + timedelta(hours=1),
            identifier="TASK",
            jobstatus="ASSIGNED",
            jobtype="SCHEDULE",
            people=pa,
            asset=self.aa,
            qset=qa,
            bu=sa,
            client=b,
        )
        for identifier in ("TASK", "EXTERNALTOUR"):
            m.JobNeed.objects.create(
                jobdesc="jobneed A",
                plandatetime=now - timedelta(minutes=3),
                expirydatetime=now + timedelta(hours=1),
                identifier=identifier,
                jobstatus="ASSIGNED",
                jobtype="SCHEDULE",
                people=pa,
                asset=pick("jobneed asset", self.aa, ab),
                qset=pick("jobneed checklist", qa, qb),
                pgroup=pick("jobneed group", ga, gb),
                job=pick("jobneed job", ja, jb),
                cuser=pick("jobneed cuser", pa, pb),
                muser=pick("jobneed muser", pa, pb),
                performedby=pick("jobneed performer", pa, pb),
                parent=pick("jobneed parent", None, jnb),
                bu=sa if identifier == "TASK" else pick("external tour site", sa, sb),
                client=a,
            )
        # A menu: A's root under B's capability, children of A, B or everyone, grandchildren under them.
        cap = {"cfor": "WEB", "capsname": "menu"}
        cb_top = self.of_b(m.Capability, capscode=f"{MARK}T", client=b, **cap)
        self.ca = m.Capability.objects.create(
            capscode="CA", parent=pick("menu root parent", None, cb_top), client=a, **cap
        )
        for n in range(2):
            owner = pick(f"menu child {n}", a, b, None)
            fields = {"capscode": f"{MARK}K{n}" if owner is b else f"K{n}", "parent": self.ca, "client": owner, **cap}
            child = self.of_b(m.Capability, **fields) if owner is b else m.Capability.objects.create(**fields)
            m.Capability.objects.create(capscode=f"G{n}", parent=child, client=a, **cap)
            self.of_b(m.Capability, capscode=f"{MARK}G{n}", capsname=f"{MARK}", parent=child, client=b, cfor="WEB")
        return self

    def params(self, draw):
        a, sa, pa = self.a.id, self.sa.id, self.pa.id
        return {
            "job_needs": {"people_id": pa, "bu_id": sa, "client_id": a},
            "external_tour_job_needs": {"people_id": pa, "bu_id": sa, "client_id": a},
            "schedule_for_adhoc": {
                "plandatetime": self.now.isoformat(),
                "bu_id": sa,
                "people_id": pa,
                "asset_id": self.aa.id,
                "questionset_id": self.qa.id,
            },
            "bu_list": {"bu_id": a, "fmt": draw("bu_list format", "text", "array", "jsonb")},
            "bulist_by_identifier": {"bu_id": a},
            "sites_list_web": {"client_id": a, "people_id": pa},
            "asset_questionsets": {
                "site_id": sa,
                "asset_id": str(self.aa.id),
                "type": draw("checklist text", "", "name", "NAME", "other"),
            },
            "asset_details": {"mdtz": SINCE, "site_id": sa},
            "web_capabilities": {"root_id": self.ca.id},
        }


def b_parts(value, key=None):
    """Every part of a JSON value that is B's: an integer id of B's range, a run of digits starting with one
    (an xpath runs an id and a depth together), a text holding MARK."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in b_parts(k) + b_parts(v, k)]
    if isinstance(value, list):
        return [p for v in value for p in b_parts(v)]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [value] if value > B_BASE else []
    text = str(value)
    if MARK in text:
        return [text]
    if key == "uuid":
        return []
    return [run for run in re.findall(r"\d+", text) if len(run) >= 7 and int(run[:7]) > B_BASE]


def ask(world, backend, draw):
    """{query: (the API's answer, the legacy answer for the same call)} for A's user."""
    user = User.objects.create_user(world.pa.loginid)
    header = {"HTTP_AUTHORIZATION": f"Token {ApiToken.issue(user)}"}
    answers = {}
    for query, params in world.params(draw).items():
        response = Client().get(f"/api/queries/{query}", params, **header)
        assert response.status_code == 200, (query, response.content)
        assert response["X-Rollout-Backend"] == backend, query
        definition = REGISTRY.get(query)
        raw = definition.run(backend, definition.clean(params, parse=True))
        answers[query] = (json.loads(response.content)["result"], json.loads(json.dumps(raw, default=str)))
    return answers


@pytest.fixture(params=["pg", "orm"])
def backend(request):
    if request.param == "orm":
        writes.enable(REGISTRY.names())
    flags.invalidate()
    return request.param


@EXAMPLES
@given(data=st.data())
def test_no_part_of_another_client_in_any_answer(backend, data):
    def draw(label, *options):
        return data.draw(st.sampled_from(options), label=label)

    with rolled_back():
        world = World(draw).build()
        for query, (answer, _) in ask(world, backend, draw).items():
            assert b_parts(answer) == [], f"{query} answered B's parts: {answer}"


def test_with_every_link_crossing_the_function_leaks_and_the_api_does_not(backend):
    """Every link names B's row: the legacy answer of each query that can leak holds B's parts — so the
    test above can fail — and the API's holds none; each part removed is counted."""

    def b_always(label, a, b, *more):
        return a if label in {"bu_list format", "checklist text", "B's checklist name"} else b

    for fmt in ("", "name"):

        def draw(label, *options, fmt=fmt):
            return fmt if label == "checklist text" else b_always(label, *options)

        with rolled_back():
            metrics.reset()
            answers = ask(World(draw).build(), backend, draw)
            for query, (answer, raw) in answers.items():
                assert b_parts(answer) == [], f"{query} answered B's parts: {answer}"
                assert bool(b_parts(raw)) == (query in CAN_LEAK), f"{query}: the legacy answer {raw}"
            filtered = {q: n["tenant_filtered"] for (q, _), n in metrics.snapshot().items() if n["tenant_filtered"]}
            assert set(filtered) == CAN_LEAK
