"""Random small legacy worlds plus parameters: the function and the twin must be equal on all of them."""

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_backends import models as m
from tests.conftest import rolled_back
from tests.legacy_world import both, db_now, typeassist

pytestmark = pytest.mark.django_db
BASE = 10**9  # ids far above the generated world's
SENTINEL = -1
EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
ODD_TEXT = st.text(alphabet=st.sampled_from("aAbBzZéÉ 1-~>_'\""), max_size=6)
OFFSETS = st.sampled_from([-720, -300, -1, 0, 1, 330, 345, 840]) | st.integers(-720, 840)
MINUTES = st.sampled_from([0, -1, 1, -1440, 1440, 2880]) | st.integers(-4 * 1440, 4 * 1440)


def ref(n, null=True, sentinel=True):
    """An index into n earlier rows (mostly the first two, so rows meet), or NULL, or the sentinel."""
    hot = st.integers(0, min(n - 1, 1))
    options = [hot, hot, hot, st.integers(0, n - 1)] if n else []
    if null:
        options.append(st.none())
    if sentinel:
        options.append(st.just(SENTINEL))
    return st.one_of(options)


@st.composite
def worlds(draw):
    w = {
        "bt": [],
        "people": [],
        "groups": [],
        "members": [],
        "sitepeople": [],
        "assets": [],
        "qsets": [],
        "jobneeds": [],
        "caps": [],
    }
    for i in range(draw(st.integers(1, 8))):
        w["bt"].append(
            {
                "parent": draw(st.sampled_from([SENTINEL, SENTINEL, None]) | st.integers(0, max(i - 1, 0)))
                if i
                else SENTINEL,
                "kind": draw(st.sampled_from(["CLIENT", "CUSTOMER", "SITE", "ZONE", None])),
                "enable": draw(st.booleans()),
                "offset": draw(OFFSETS),
                "name": draw(ODD_TEXT),
                "butype": draw(st.booleans()),
            }
        )
    nbu = len(w["bt"])
    for _ in range(draw(st.integers(0, 4))):
        w["groups"].append({"client": draw(ref(nbu, sentinel=False)), "site": draw(st.booleans())})
    ng = len(w["groups"])
    for _ in range(draw(st.integers(1, 4))):
        tokens = draw(st.lists(st.integers(-1, ng - 1) if ng else st.just(-1), max_size=3))
        text = draw(st.sampled_from(["ids", "ids", "missing", "empty", "malformed"]))
        w["people"].append(
            {
                "client": draw(ref(nbu, sentinel=False)),
                "site": draw(ref(nbu)),
                "isadmin": draw(st.booleans()),
                "groups": (text, tokens),
            }
        )
    npp = len(w["people"])
    for _ in range(draw(st.integers(0, 6))):
        w["members"].append({"group": draw(ref(ng)), "person": draw(ref(npp)), "site": draw(ref(nbu, sentinel=False))})
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(-5, 3))
        w["sitepeople"].append(
            {
                "person": draw(st.integers(0, npp - 1)),
                "site": draw(st.integers(0, nbu - 1)),
                "from": start,
                "upto": start + draw(st.integers(-1, 5)),
            }
        )
    for _ in range(draw(st.integers(0, 5))):
        w["assets"].append(
            {
                "site": draw(ref(nbu, sentinel=False)),
                "enable": draw(st.booleans()),
                "identifier": draw(st.sampled_from(["ASSET", "NEA", "CHECKPOINT", None])),
                "servprov": draw(ref(nbu)),
                "mdtz": draw(MINUTES),
            }
        )
    na = len(w["assets"])
    for i in range(draw(st.integers(0, 5))):
        includes = draw(st.lists(st.integers(0, na - 1), max_size=4)) if na else []
        w["qsets"].append(
            {
                "site": draw(ref(nbu, sentinel=False)),
                "name": draw(ODD_TEXT),
                "parent": draw(st.sampled_from([SENTINEL, SENTINEL, None]) | st.integers(0, max(i - 1, 0)))
                if i
                else SENTINEL,
                "includes": includes,
            }
        )
    nq = len(w["qsets"])
    for _ in range(draw(st.integers(0, 12))):
        w["jobneeds"].append(
            {
                "plan": draw(st.none() | MINUTES),
                "length": draw(st.sampled_from([0, 1, 30, 1440])),
                "offset": draw(OFFSETS),
                "identifier": draw(st.sampled_from(["TASK", "TICKET", "EXTERNALTOUR", "PPM", None])),
                "status": draw(st.sampled_from(["ASSIGNED", "COMPLETED", "AUTOCLOSED", None])),
                "people": draw(ref(npp)),
                "cuser": draw(ref(npp)),
                "muser": draw(ref(npp)),
                "group": draw(ref(ng)),
                "site": draw(ref(nbu, sentinel=False)),
                "client": draw(ref(nbu, sentinel=False)),
                "asset": draw(ref(na)),
                "qset": draw(ref(nq)),
                "grace": draw(st.sampled_from([0, 5, 60])),
                "timebound": draw(st.sampled_from([None, True, False])),
            }
        )
    for i in range(draw(st.integers(0, 6))):
        w["caps"].append(
            {
                "parent": draw(st.none() | st.integers(0, max(i - 1, 0))) if i else None,
                "cfor": draw(st.sampled_from(["WEB", "WEB", "MOBILE", "REPORT"])),
            }
        )
    return w


def build(w):
    """Insert the world with ids from BASE; returns the ids to draw parameters from."""
    now = db_now()
    today = now.date()

    def fk(index):
        return index if index in (None, SENTINEL) else BASE + index

    ta = {code: typeassist(code).id for code in ("CLIENT", "CUSTOMER", "SITE", "ZONE", "PEOPLEGROUP", "SITEGROUP")}
    butype = typeassist("OFFICE").id
    m.BusinessUnit.objects.bulk_create(
        m.BusinessUnit(
            id=BASE + i,
            bucode=f"B{i}",
            buname=b["name"],
            identifier_id=ta.get(b["kind"]),
            parent_id=fk(b["parent"]),
            enable=b["enable"],
            ctzoffset=b["offset"],
            butype_id=butype if b["butype"] else None,
        )
        for i, b in enumerate(w["bt"])
    )
    m.PeopleGroup.objects.bulk_create(
        m.PeopleGroup(
            id=BASE + i,
            groupname=f"G{i}",
            client_id=fk(g["client"]),
            identifier_id=ta["SITEGROUP" if g["site"] else "PEOPLEGROUP"],
        )
        for i, g in enumerate(w["groups"])
    )

    def extras(kind, tokens):
        ids = " ".join(str(SENTINEL if t == SENTINEL else BASE + t) for t in tokens)
        return {
            "ids": {"assignsitegroup": ids},
            "missing": {},
            "empty": {"assignsitegroup": ""},
            "malformed": {"assignsitegroup": (ids + " x1").strip()},
        }[kind]

    m.People.objects.bulk_create(
        m.People(
            id=BASE + i,
            peoplecode=f"P{i}",
            peoplename=f"P{i}",
            client_id=fk(p["client"]),
            bu_id=fk(p["site"]),
            isadmin=p["isadmin"],
            people_extras=extras(*p["groups"]),
        )
        for i, p in enumerate(w["people"])
    )
    m.GroupMembership.objects.bulk_create(
        m.GroupMembership(pgroup_id=fk(g["group"]), people_id=fk(g["person"]), assignsites_id=fk(g["site"]))
        for g in w["members"]
    )
    m.SitePeople.objects.bulk_create(
        m.SitePeople(
            people_id=BASE + s["person"],
            bu_id=BASE + s["site"],
            fromdt=today + timedelta(days=s["from"]),
            uptodt=today + timedelta(days=s["upto"]),
        )
        for s in w["sitepeople"]
    )
    m.Asset.objects.bulk_create(
        m.Asset(
            id=BASE + i,
            assetcode=f"A{i}",
            assetname=f"A{i}",
            bu_id=fk(a["site"]),
            enable=a["enable"],
            identifier=a["identifier"],
            servprov_id=fk(a["servprov"]),
            mdtz=now + timedelta(minutes=a["mdtz"]),
        )
        for i, a in enumerate(w["assets"])
    )
    m.QuestionSet.objects.bulk_create(
        m.QuestionSet(
            id=BASE + i,
            qsetname=q["name"],
            type="CHECKLIST",
            parent_id=fk(q["parent"]),
            bu_id=fk(q["site"]),
            assetincludes=[str(BASE + a) for a in q["includes"]],
        )
        for i, q in enumerate(w["qsets"])
    )
    jobneeds = []
    for i, j in enumerate(w["jobneeds"]):
        plan = None if j["plan"] is None else now + timedelta(minutes=j["plan"])
        jobneeds.append(
            m.JobNeed(
                id=BASE + i,
                jobdesc=f"J{i}",
                plandatetime=plan,
                expirydatetime=None if plan is None else plan + timedelta(minutes=j["length"]),
                ctzoffset=j["offset"],
                identifier=j["identifier"],
                jobstatus=j["status"],
                people_id=fk(j["people"]),
                cuser_id=fk(j["cuser"]),
                muser_id=fk(j["muser"]),
                pgroup_id=fk(j["group"]),
                bu_id=fk(j["site"]),
                client_id=fk(j["client"]),
                asset_id=fk(j["asset"]),
                qset_id=fk(j["qset"]),
                gracetime=j["grace"],
                other_info={} if j["timebound"] is None else {"istimebound": j["timebound"]},
            )
        )
    m.JobNeed.objects.bulk_create(jobneeds)
    m.Capability.objects.bulk_create(
        m.Capability(id=BASE + i, capscode=f"C{i}", parent_id=fk(c["parent"]), cfor=c["cfor"])
        for i, c in enumerate(w["caps"])
    )
    return {
        "jobneeds": jobneeds,
        "members": {
            g["group"]: g["person"]
            for g in w["members"]
            if g["group"] not in (None, SENTINEL) and g["person"] not in (None, SENTINEL)
        },
        "bt": [BASE + i for i in range(len(w["bt"]))] + [SENTINEL],
        "people": [BASE + i for i in range(len(w["people"]))],
        "assets": [BASE + i for i in range(len(w["assets"]))] or [SENTINEL],
        "asset_sites": sorted({BASE + a["site"] for a in w["assets"] if a["site"] not in (None, SENTINEL)}),
        "qsets": [BASE + i for i in range(len(w["qsets"]))] or [SENTINEL],
        "caps": [BASE + i for i in range(len(w["caps"]))] or [SENTINEL],
        "moments": [now]
        + [j.plandatetime - timedelta(minutes=j.gracetime) for j in jobneeds if j.plandatetime]
        + [j.expirydatetime for j in jobneeds if j.expirydatetime],
        "mdtz": [now + timedelta(minutes=a["mdtz"]) for a in w["assets"]] + [now - timedelta(days=9)],
    }


def assert_equal(query, **params):
    control, candidate, difference = both(query, **params)
    assert difference.equal, f"{query}{params}: {difference}\n  function: {control!r}\n  twin: {candidate!r}"


@EXAMPLES
@given(world=worlds(), data=st.data())
def test_job_queries_agree(world, data):
    with rolled_back():
        ids = build(world)
        args = {
            "people_id": data.draw(st.sampled_from(ids["people"])),
            "bu_id": data.draw(st.sampled_from(ids["bt"])),
            "client_id": data.draw(st.sampled_from(ids["bt"])),
        }
        if ids["jobneeds"] and data.draw(st.integers(0, 4)):  # mostly ask about a row that exists
            row = data.draw(st.sampled_from(ids["jobneeds"]))
            group_member = ids["members"].get((row.pgroup_id or 0) - BASE)
            who = [p for p in (row.people_id, row.cuser_id, row.muser_id) if p not in (None, SENTINEL)]
            who += [BASE + group_member] if group_member is not None else []
            args = {
                "people_id": data.draw(st.sampled_from(who)) if who else args["people_id"],
                "bu_id": row.bu_id if row.bu_id is not None else args["bu_id"],
                "client_id": row.client_id if row.client_id is not None else args["client_id"],
            }
        assert_equal("job_needs", **args)
        assert_equal("external_tour_job_needs", **args)
        asset, qset = data.draw(st.sampled_from(ids["assets"])), data.draw(st.sampled_from(ids["qsets"]))
        moment = data.draw(st.sampled_from(ids["moments"]))
        planned = [row for row in ids["jobneeds"] if row.plandatetime]
        if planned and data.draw(st.integers(0, 4)):  # mostly a moment at the edge of a real window
            row = data.draw(st.sampled_from(planned))
            asset, qset = row.asset_id or asset, row.qset_id or qset
            start = row.plandatetime - timedelta(minutes=row.gracetime)
            moment = data.draw(st.sampled_from([start, row.expirydatetime, start - timedelta(microseconds=1)]))
        assert_equal(
            "schedule_for_adhoc",
            plandatetime=moment,
            bu_id=args["bu_id"],
            people_id=args["people_id"],
            asset_id=asset,
            questionset_id=qset,
        )


@EXAMPLES
@given(world=worlds(), data=st.data())
def test_business_unit_queries_agree(world, data):
    with rolled_back():
        ids = build(world)
        bu = data.draw(st.sampled_from(ids["bt"][:2]) | st.sampled_from(ids["bt"]))
        assert_equal(
            "bu_list",
            bu_id=bu,
            up=data.draw(st.booleans()),
            down=data.draw(st.booleans()),
            fmt=data.draw(st.sampled_from(["text", "array", "jsonb", "Array"])),
        )
        assert_equal(
            "bulist_by_identifier",
            bu_id=data.draw(st.none() | st.just(bu)),
            customers=data.draw(st.booleans()),
            sites=data.draw(st.booleans()),
        )
        assert_equal("sites_list_web", client_id=bu, people_id=data.draw(st.sampled_from(ids["people"])))


@EXAMPLES
@given(world=worlds(), data=st.data())
def test_asset_and_capability_queries_agree(world, data):
    with rolled_back():
        ids = build(world)
        site = data.draw(st.sampled_from(ids["asset_sites"] or ids["bt"]) | st.sampled_from(ids["bt"]))
        asset = data.draw(st.sampled_from(ids["assets"]).map(str) | ODD_TEXT)
        for kind in ("", "name", data.draw(ODD_TEXT)):
            assert_equal("asset_questionsets", site_id=site, asset_id=asset, type=kind)
        assert_equal(
            "asset_details",
            mdtz=data.draw(st.sampled_from(ids["mdtz"][-1:]) | st.sampled_from(ids["mdtz"])),
            site_id=site,
        )
        assert_equal("web_capabilities", root_id=data.draw(st.sampled_from(ids["caps"])))
