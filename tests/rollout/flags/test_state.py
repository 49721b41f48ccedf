"""Cohort precedence is written once (flags.state.PRECEDENCE): the router, the status line, the admin and the docs
read it from there; the cohorts are the ones the actor resolver declares. The audit log and the flag-cache
invalidation are separate."""

import contextlib
import io
import itertools
import json
import re

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management import call_command
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.urls import reverse

from rollout.admin import _rule_lines
from rollout.flags import history, writes
from rollout.flags.cache import VERSION_KEY, flags
from rollout.flags.state import PRECEDENCE, FlagState
from rollout.models import FlagChange, QueryFlag
from rollout.routing.actors import Actor, actor_for_user
from tests.legacy_world import SENTINEL, bu, group, member, person
from tests.rollout_helpers import ROOT

pytestmark = pytest.mark.django_db

# An actor every rule can match: a legacy person in a group, at a site, of a client, and a staff Django user.
EVERYTHING = Actor(
    person=1,
    client=10,
    site=100,
    people_group=frozenset({7}),
    user_id=5,
    user_group_ids=frozenset({3}),
    is_authenticated=True,
    is_staff=True,
)
# The precedence, top first: each rule's verdict, and flag data that makes it match EVERYTHING.
# A rule added to the chain without an entry here fails the tests.
MATCHING = {
    "retired": (True, {"retired": True}),
    "everyone_off": (False, {"everyone": False}),
    "exclusions": (False, {"exclusions": {"site": frozenset({100})}}),
    "everyone": (True, {"everyone": True}),
    "cohorts": (True, {"cohorts": {"people_group": frozenset({7})}}),
    "users": (True, {"users": frozenset({5})}),
    "percent": (True, {"percent": 100.0}),
}


def test_the_chain_is_the_documented_order():
    assert [rule.name for rule in PRECEDENCE] == list(MATCHING)
    table = (ROOT / "docs" / "rollout.md").read_text()
    documented = re.findall(r"^\| \d+ \| `(\w+)` \|", table, flags=re.MULTILINE)
    assert documented == [rule.name for rule in PRECEDENCE]


@pytest.mark.parametrize(
    "earlier,later",
    [
        (a, b)
        for a, b in itertools.combinations(MATCHING, 2)
        if not set(MATCHING[a][1]) & set(MATCHING[b][1])  # everyone can't be both No and Yes
    ],
)
def test_of_two_rules_that_both_match_the_earlier_decides(earlier, later):
    state = FlagState("orm.q", **MATCHING[earlier][1], **MATCHING[later][1])
    assert state.decide(EVERYTHING) == (MATCHING[earlier][0], earlier)


@pytest.mark.parametrize("rule", PRECEDENCE, ids=lambda rule: rule.name)
def test_each_check_has_no_opinion_while_its_fields_are_empty_and_one_when_set(rule):
    empty = FlagState("orm.q")
    assert rule.check(empty, EVERYTHING) is None and not rule.in_force(empty)
    verdict, data = MATCHING[rule.name]
    state = FlagState("orm.q", **data)
    assert rule.verdict is verdict and rule.check(state, EVERYTHING) is verdict and rule.in_force(state)
    assert state.decide(EVERYTHING) == (verdict, rule.name)


# --- the status line, read off the chain --------------------------------------------------------------------


def status_of(query):
    out = io.StringIO()
    call_command("rollout", "--json", "status", stdout=out)
    return next(row["serving"] for row in json.loads(out.getvalue()) if row["query"] == query)


@pytest.fixture
def bu_flag():
    return QueryFlag.objects.get(name="orm.bu_list")


def test_a_flag_on_only_for_chosen_django_users_and_groups_says_so(bu_flag, admin_client):
    ana = User.objects.create_user("ana")
    testers = Group.objects.create(name="testers")
    bu_flag.users.add(ana)
    assert status_of("bu_list") == f"candidate for users [{ana.pk}]"
    bu_flag.groups.add(testers)
    bu_flag.staff = True
    bu_flag.save()
    assert status_of("bu_list") == f"candidate for users [{ana.pk}], groups [{testers.pk}], staff"
    # What the status says is what the router does.
    decision = flags.get("orm.bu_list").decide(actor_for_user(ana))
    assert decision == (True, "users")
    changelist = admin_client.get(reverse("admin:rollout_queryflag_changelist")).content.decode()
    assert f"candidate for users [{ana.pk}], groups [{testers.pk}], staff" in changelist


@pytest.fixture
def world_ids():
    """Ids that exist in the legacy world: the resolver refuses the others."""
    client = bu(kind="CLIENT")
    site = bu(parent=client.id)
    team, worker = group(client), person(client, site, loginid="someone")
    return {"people_group": team.id, "person": worker.id, "site": site.id, "client": client.id}


def test_exclusions_show_before_what_they_beat(bu_flag, world_ids):
    ids = world_ids
    writes.change_cohorts("bu_list", {"site": [ids["site"]], "person": [ids["person"]]})
    writes.change_cohorts("bu_list", {"people_group": [ids["people_group"]]}, excluded=True)
    writes.set_percent("bu_list", 10, "site")
    # Labelled and ordered as the resolver declares its cohorts.
    assert status_of("bu_list") == (
        f"control for people group [{ids['people_group']}]; "
        f"candidate for person [{ids['person']}], site [{ids['site']}], 10% by site"
    )
    writes.enable(["bu_list"])  # everyone=Yes makes the inclusions unreachable: they are not listed
    assert status_of("bu_list") == f"control for people group [{ids['people_group']}]; candidate for everyone"
    writes.kill(["bu_list"])
    assert status_of("bu_list") == "control for everyone (killed)"


def test_only_exclusions_serve_no_one_the_candidate(bu_flag, world_ids):
    writes.change_cohorts("bu_list", {"client": [world_ids["client"]]}, excluded=True)
    assert status_of("bu_list") == f"control for client [{world_ids['client']}]"
    writes.change_cohorts("bu_list", remove={"client": [world_ids["client"]]}, excluded=True)
    assert status_of("bu_list") == "control (no rule)"


def test_a_cohort_the_resolver_does_not_declare_or_an_id_that_does_not_exist_is_refused(bu_flag, world_ids):
    with pytest.raises(writes.OperationError, match="cohort: region is not one of person, people_group, site, client"):
        writes.change_cohorts("bu_list", {"region": [1]})
    with pytest.raises(writes.OperationError, match="cohort site: no site 987654321"):
        writes.change_cohorts("bu_list", {"site": [world_ids["site"], 987654321]})
    assert QueryFlag.objects.get(name="orm.bu_list").cohorts == {}


def test_the_admin_form_shows_the_rules_in_chain_order(admin_client, bu_flag):
    page = admin_client.get(reverse("admin:rollout_queryflag_change", args=[bu_flag.pk])).content.decode()
    fields = [f for line in _rule_lines() for f in line]
    assert "exclude__site" in fields and "cohort__person" in fields  # one box per declared cohort
    positions = [page.index(f'name="{field}"') for field in dict.fromkeys(fields)]
    assert positions == sorted(positions)
    assert "excluded site ids" in page and "people group ids" in page and "Legacy" not in page


# --- the flag cache is invalidated without the audit log ------------------------------------------------------


@contextlib.contextmanager
def audit_log_disconnected():
    receivers = [
        (pre_save, history._remember_before),
        (post_save, history._record_save),
        (post_delete, history._record_delete),
    ]
    for signal, receiver in receivers:
        assert signal.disconnect(receiver, sender=QueryFlag)
    for field in ("users", "groups"):
        through = getattr(QueryFlag, field).through
        assert m2m_changed.disconnect(sender=through, dispatch_uid=f"rollout.flags.history.{field}")
    try:
        yield
    finally:
        for signal, receiver in receivers:
            signal.connect(receiver, sender=QueryFlag)
        for field in ("users", "groups"):
            m2m_changed.connect(
                history._record_membership(field),
                sender=getattr(QueryFlag, field).through,
                weak=False,
                dispatch_uid=f"rollout.flags.history.{field}",
            )


def test_a_committed_change_reaches_the_cache_with_the_audit_log_gone(
    settings, bu_flag, django_capture_on_commit_callbacks
):
    settings.ROLLOUT_FLAG_RECHECK_SECONDS = 3600  # only an invalidation can refresh the states in this test
    ana = User.objects.create_user("ana")
    assert flags.get("orm.bu_list").cohorts == {}
    with audit_log_disconnected():
        before = FlagChange.objects.count()
        cache.set(VERSION_KEY, "what other processes compare")
        with django_capture_on_commit_callbacks(execute=True):
            bu_flag.cohorts = {"site": [3]}
            bu_flag.save()
        assert cache.get(VERSION_KEY) is None  # every other process reloads at its next recheck
        assert flags.get("orm.bu_list").cohorts == {"site": frozenset({3})}
        fingerprint = flags._fingerprint()
        with django_capture_on_commit_callbacks(execute=True):
            bu_flag.users.add(ana)
        assert flags.get("orm.bu_list").users == frozenset({ana.pk})
        # Processes without the shared cache recompute the fingerprint: a membership change moves it.
        assert flags._fingerprint() != fingerprint
        with django_capture_on_commit_callbacks(execute=True):
            ana.queryflag_set.remove(bu_flag)  # from the user's side
        assert flags.get("orm.bu_list").users == frozenset()
        assert FlagChange.objects.count() == before
    # With the audit log: a membership changed from either side is recorded.
    bu_flag.users.add(ana)
    ana.queryflag_set.remove(bu_flag)
    testers = Group.objects.create(name="testers")
    testers.queryflag_set.add(bu_flag)
    testers.queryflag_set.clear()
    recorded = [c.changes for c in FlagChange.objects.filter(flag_name="orm.bu_list").order_by("id")][-4:]
    assert recorded == [
        {"users": ["added", [ana.pk]]},
        {"users": ["removed", [ana.pk]]},
        {"groups": ["added", [testers.pk]]},
        {"groups": ["cleared", [testers.pk]]},
    ]


# --- a person's groups leave out the sentinel ------------------------------------------------------------------


def test_the_actor_of_a_user_has_the_persons_real_groups_only():
    team = group()
    worker = person(loginid="worker")
    for group_id in (team.id, SENTINEL, None):
        member(group_id, worker.id)
    actor = actor_for_user(User.objects.create_user("worker"))
    assert actor.one("person") == worker.id and actor.ids("people_group") == frozenset({team.id})
