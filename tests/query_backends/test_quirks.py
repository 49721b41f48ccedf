"""One named test per quirk of the contract: the legacy answer is what the contract says, and the twin agrees."""

from datetime import date, timedelta

import pytest
from django.db import connection

from query_backends.errors import LegacyDataError
from query_backends.models import SitePeople
from tests.legacy_world import (
    SENTINEL,
    agreed,
    asset,
    both,
    bu,
    capability,
    db_now,
    group,
    ids,
    jobneed,
    member,
    person,
    questionset,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    client = bu(kind="CLIENT")
    return bu(parent=client, ctzoffset=0)


def job_needs(worker, site, query="job_needs"):
    return ids(agreed(query, people_id=worker.id, bu_id=site.id, client_id=site.parent_id))


def test_job_needs_leaves_out_null_identifier_tickets_and_external_tours(site):
    worker = person(site.parent, site)
    kept = jobneed(site, site.parent, people=worker, identifier="TASK")
    for identifier in (None, "TICKET", "EXTERNALTOUR"):
        jobneed(site, site.parent, people=worker, identifier=identifier)
    assert job_needs(worker, site) == [kept.id]


def test_job_needs_involvement_by_people_cuser_muser_or_group_but_never_the_sentinel_group(site):
    worker, other = person(site.parent, site), person(site.parent, site)
    team = group(site.parent)
    member(team.id, worker.id)
    member(SENTINEL, worker.id)
    member(None, worker.id)
    involved = [
        jobneed(site, site.parent, people=worker),
        jobneed(site, site.parent, cuser=worker, people=other),
        jobneed(site, site.parent, muser=worker, people=other),
        jobneed(site, site.parent, pgroup=team),
    ]
    jobneed(site, site.parent, pgroup_id=SENTINEL, people=other)
    jobneed(site, site.parent, pgroup=None, people=other)
    assert job_needs(worker, site) == sorted(j.id for j in involved)


def test_job_needs_local_plan_date_uses_ctzoffset_at_the_day_edges(site):
    worker = person(site.parent, site)
    midnight = db_now().replace(hour=0, minute=0, second=0, microsecond=0)
    old = midnight - timedelta(days=3)
    # Local date = date of (plandatetime + ctzoffset minutes) in UTC; the window is long past for all of them.
    tonight_east = jobneed(
        site,
        site.parent,
        people=worker,
        plandatetime=midnight - timedelta(minutes=300),
        expirydatetime=old,
        ctzoffset=330,
    )  # local 00:30 today → in
    jobneed(
        site,
        site.parent,
        people=worker,
        plandatetime=midnight + timedelta(minutes=100),
        expirydatetime=old,
        ctzoffset=-120,
    )  # local 23:40 yesterday → out
    day_after = jobneed(
        site,
        site.parent,
        people=worker,
        plandatetime=midnight + timedelta(days=2, minutes=-1),
        expirydatetime=old,
        ctzoffset=0,
    )  # local 23:59 tomorrow → in
    jobneed(
        site, site.parent, people=worker, plandatetime=midnight, expirydatetime=old, ctzoffset=-1
    )  # 23:59 yesterday → out
    jobneed(site, site.parent, people=worker, plandatetime=midnight + timedelta(days=2), expirydatetime=old)
    assert job_needs(worker, site) == sorted([tonight_east.id, day_after.id])


def test_job_needs_window_spanning_now_counts_whatever_the_plan_date(site):
    worker = person(site.parent, site)
    now = db_now()
    spanning = jobneed(site, site.parent, people=worker, plandatetime=now - timedelta(days=5), expirydatetime=now)
    jobneed(
        site,
        site.parent,
        people=worker,
        plandatetime=now - timedelta(days=5),
        expirydatetime=now - timedelta(microseconds=1),
    )
    jobneed(site, site.parent, people=worker, plandatetime=None, expirydatetime=None)
    assert job_needs(worker, site) == [spanning.id]


def test_external_tours_ignore_the_site_argument(site):
    worker = person(site.parent, site)
    elsewhere = bu(parent=site.parent)
    tour = jobneed(elsewhere, site.parent, people=worker, identifier="EXTERNALTOUR")
    jobneed(site, site.parent, people=worker, identifier="TASK")
    assert job_needs(worker, site, "external_tour_job_needs") == [tour.id]


def test_job_needs_istimebound_is_the_text_of_other_info(site):
    worker = person(site.parent, site)
    jobneed(site, site.parent, people=worker, other_info={"istimebound": True})
    rows = agreed("job_needs", people_id=worker.id, bu_id=site.id, client_id=site.parent_id)
    assert rows[0]["istimebound"] == "true"


def test_adhoc_earliest_open_plan_wins_ties_by_lower_id_and_null_status_is_left_out(site):
    worker = person(site.parent, site)
    thing = asset(site)
    qset = questionset(site, [thing.id])
    now = db_now()
    common = {"people": worker, "asset": thing, "qset": qset, "gracetime": 10}
    # Earlier and open at `now`, but left out: NULL status (<> is never true for NULL) and COMPLETED.
    jobneed(site, site.parent, plandatetime=now - timedelta(minutes=50), jobstatus=None, **common)
    jobneed(site, site.parent, plandatetime=now - timedelta(minutes=50), jobstatus="COMPLETED", **common)
    autoclosed = jobneed(site, site.parent, plandatetime=now - timedelta(minutes=40), jobstatus="AUTOCLOSED", **common)
    first = jobneed(site, site.parent, plandatetime=now - timedelta(minutes=30), **common)
    jobneed(site, site.parent, plandatetime=now - timedelta(minutes=30), **common)
    rows = agreed(
        "schedule_for_adhoc",
        plandatetime=now,
        bu_id=site.id,
        people_id=worker.id,
        asset_id=thing.id,
        questionset_id=qset.id,
    )
    assert [row["jobneedid"] for row in rows] == [autoclosed.id]
    autoclosed.delete()
    rows = agreed(
        "schedule_for_adhoc",
        plandatetime=now,
        bu_id=site.id,
        people_id=worker.id,
        asset_id=thing.id,
        questionset_id=qset.id,
    )
    assert [row["jobneedid"] for row in rows] == [first.id]


def test_adhoc_window_edges_are_inclusive_and_gracetime_extends_the_start(site):
    worker = person(site.parent, site)
    thing = asset(site)
    qset = questionset(site, [thing.id])
    plan = db_now() + timedelta(days=1)
    row = jobneed(
        site,
        site.parent,
        people=worker,
        asset=thing,
        qset=qset,
        gracetime=15,
        plandatetime=plan,
        expirydatetime=plan + timedelta(hours=1),
    )
    found = {}
    for label, moment in {
        "before": plan - timedelta(minutes=15, microseconds=1),
        "start": plan - timedelta(minutes=15),
        "end": plan + timedelta(hours=1),
        "after": plan + timedelta(hours=1, microseconds=1),
    }.items():
        rows = agreed(
            "schedule_for_adhoc",
            plandatetime=moment,
            bu_id=site.id,
            people_id=worker.id,
            asset_id=thing.id,
            questionset_id=qset.id,
        )
        found[label] = [r["jobneedid"] for r in rows]
    assert found == {"before": [], "start": [row.id], "end": [row.id], "after": []}


def test_bu_list_up_stops_at_the_sentinel_and_formats_its_answer():
    client = bu(kind="CLIENT")
    site_ = bu(parent=client)
    zone = bu(parent=site_, kind="ZONE")
    assert agreed("bu_list", bu_id=zone.id, up=True, down=False, fmt="array") == [client.id, site_.id, zone.id]
    assert agreed("bu_list", bu_id=site_.id, up=False, down=True, fmt="TEXT") == f"{site_.id} {zone.id}"
    assert agreed("bu_list", bu_id=site_.id, up=False, down=False, fmt="array") == [site_.id]
    tree = agreed("bu_list", bu_id=client.id, up=True, down=True, fmt="jsonb")
    assert tree[str(zone.id)] == {"bucode": zone.bucode, "buname": zone.buname, "parent_id": site_.id}
    assert str(SENTINEL) not in tree


def test_bu_list_of_a_missing_unit_is_empty_in_every_format():
    assert agreed("bu_list", bu_id=10**15, fmt="text") == ""
    assert agreed("bu_list", bu_id=10**15, fmt="array") == []
    assert agreed("bu_list", bu_id=10**15, fmt="jsonb") is None


def test_bu_list_of_the_sentinel_itself_includes_it():
    assert agreed("bu_list", bu_id=SENTINEL, up=True, down=False, fmt="array") == [SENTINEL]


def test_bulist_by_identifier_only_for_top_level_clients():
    client = bu(kind="CLIENT")
    customer = bu(parent=client, kind="CUSTOMER")
    site_ = bu(parent=customer, kind="SITE")
    bu(parent=site_, kind=None)
    assert agreed("bulist_by_identifier", bu_id=client.id, customers=True, sites=True) == f"{customer.id} {site_.id}"
    assert agreed("bulist_by_identifier", bu_id=client.id, customers=False, sites=False) == str(client.id)
    assert agreed("bulist_by_identifier", bu_id=customer.id) == ""
    assert agreed("bulist_by_identifier", bu_id=None) == ""


def test_sites_list_web_malformed_assignsitegroup_fails_on_both_sides_for_non_admins():
    client = bu(kind="CLIENT")
    worker = person(client, groups="12 x3")
    control, candidate, difference = both("sites_list_web", client_id=client.id, people_id=worker.id)
    assert isinstance(control, LegacyDataError) and isinstance(candidate, LegacyDataError)
    assert difference.equal
    admin = person(client, groups="12 x3", isadmin=True)
    assert ids(agreed("sites_list_web", client_id=client.id, people_id=admin.id)) == [client.id]


def test_sites_list_web_non_admin_sees_group_sites_and_current_assignments_only():
    client = bu(kind="CLIENT")
    by_group, current, expired, future, disabled = (bu(parent=client) for _ in range(5))
    disabled.enable = False
    disabled.save()
    sitegroup = group(client, kind="SITEGROUP")
    member(sitegroup.id, site=by_group)
    member(sitegroup.id, site=disabled)
    worker = person(client, groups=f"{sitegroup.id} {SENTINEL}")
    today = db_now().date()
    for s, start, end in (
        (current, today, today),
        (expired, date(2000, 1, 1), today - timedelta(days=1)),
        (future, today + timedelta(days=1), today + timedelta(days=9)),
    ):
        SitePeople.objects.create(people=worker, bu=s, client=client, fromdt=start, uptodt=end)
    rows = agreed("sites_list_web", client_id=client.id, people_id=worker.id)
    assert ids(rows) == sorted([by_group.id, current.id])
    missing_key = person(client, groups=None)
    assert agreed("sites_list_web", client_id=client.id, people_id=missing_key.id) == []


def test_sites_list_web_admin_only_for_their_own_client():
    client, other = bu(kind="CLIENT"), bu(kind="CLIENT")
    s = bu(parent=client, butype=None)
    admin = person(client, isadmin=True, groups="")
    rows = agreed("sites_list_web", client_id=client.id, people_id=admin.id)
    assert ids(rows) == sorted([client.id, s.id]) and rows[0]["butypename"] is None
    assert agreed("sites_list_web", client_id=other.id, people_id=admin.id) == []


def test_asset_questionsets_ids_sort_as_text_and_only_top_level_sets_count(site):
    thing = asset(site)
    sets = [questionset(site, [thing.id]) for _ in range(11)]
    child = questionset(site, [thing.id], parent=sets[0].id)
    answer = agreed("asset_questionsets", site_id=site.id, asset_id=str(thing.id))
    assert answer.split(" ") == sorted(str(s.id) for s in sets)
    assert str(child.id) not in answer.split(" ")


def test_asset_questionsets_names_distinct_case_sensitive_in_collation_order(site):
    thing = asset(site)
    for name in ("beta", "Beta", "alpha", "beta", "Zulu", "élan"):
        questionset(site, [thing.id], name=name)
    answer = agreed("asset_questionsets", site_id=site.id, asset_id=str(thing.id), type="NAME")
    names = answer.split("~")
    assert sorted(names) == sorted({"beta", "Beta", "alpha", "Zulu", "élan"})


def test_asset_questionsets_long_asset_id_matches_nothing(site):
    thing = asset(site)
    questionset(site, [thing.id])
    assert agreed("asset_questionsets", site_id=site.id, asset_id=str(thing.id) + "0" * 60) == ""


def test_asset_details_leaves_out_nea_null_identifier_and_disabled(site):
    vendor = bu(parent=site.parent, kind=None, buname="Vendor")
    since = db_now() - timedelta(days=1)
    kept = asset(site, servprov=vendor)
    plain = asset(site, servprov=None)
    asset(site, identifier="NEA")
    asset(site, identifier=None)
    asset(site, enable=False)
    questionset(site, [kept.id, plain.id], name="b")
    questionset(site, [kept.id], name="a")
    rows = {r["id"]: r for r in agreed("asset_details", mdtz=since, site_id=site.id)}
    assert sorted(rows) == sorted([kept.id, plain.id])
    assert rows[kept.id]["servprovname"] == "Vendor" and rows[plain.id]["servprovname"] is None
    assert rows[kept.id]["qsetname"] == "a~b" and rows[plain.id]["qsetname"] == "b"


def test_web_capabilities_root_must_be_web_children_need_not_and_xpath_runs_digits_together():
    root = capability(cfor="WEB")
    mobile_child = capability(root, cfor="MOBILE")
    grandchild = capability(mobile_child, cfor="REPORT")
    rows = agreed("web_capabilities", root_id=root.id)
    assert [r["id"] for r in rows] == [root.id, mobile_child.id, grandchild.id]
    assert rows[1]["xpath"] == f"{root.id}>{mobile_child.id}2"
    assert rows[2]["xpath"] == f"{root.id}>{mobile_child.id}2>{grandchild.id}3"
    assert rows[2]["path"] == f"{root.capscode}->{mobile_child.capscode}->{grandchild.capscode}"
    assert agreed("web_capabilities", root_id=mobile_child.id) == []


def test_web_capabilities_order_by_xpath_as_text_not_by_number():
    root = capability(cfor="WEB")
    children = [capability(root) for _ in range(12)]
    rows = agreed("web_capabilities", root_id=root.id)
    xpaths = [r["xpath"] for r in rows[1:]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT x FROM unnest(%s::text[]) x ORDER BY x", [xpaths])
        assert xpaths == [x for (x,) in cursor.fetchall()]
    by_number = [f"{root.id}>{c.id}2" for c in sorted(children, key=lambda c: c.id)]
    assert len(xpaths) == 12 and (xpaths != by_number or len({len(str(c.id)) for c in children}) == 1)


def test_sites_list_web_a_person_asked_for_under_another_client_has_no_groups():
    home, other = bu(kind="CLIENT"), bu(kind="CLIENT")
    group_site, assigned = bu(parent=home), bu(parent=other)
    sitegroup = group(home, kind="SITEGROUP")
    member(sitegroup.id, site=group_site)
    worker = person(home, groups=str(sitegroup.id))
    today = db_now().date()
    SitePeople.objects.create(people=worker, bu=assigned, client=other, fromdt=today, uptodt=today)
    assert ids(agreed("sites_list_web", client_id=home.id, people_id=worker.id)) == sorted([group_site.id, assigned.id])
    # Under another client the groups are not read (the sitepeople part is by person only) ...
    assert ids(agreed("sites_list_web", client_id=other.id, people_id=worker.id)) == [assigned.id]
    # ... not even malformed ones: the cast never runs, so nothing fails.
    malformed = person(home, groups="1 x2")
    assert agreed("sites_list_web", client_id=other.id, people_id=malformed.id) == []
