"""Cohort precedence is written once (flag_state.PRECEDENCE): the router, the status line, the admin and the docs
read it from there. The audit log and the flag-cache invalidation are separate; waffle's `testing` is not read."""

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
from django.test import RequestFactory
from django.urls import reverse
from waffle import flag_is_active

from rollout import history, operations
from rollout.actors import Actor, actor_for_user
from rollout.flag_cache import VERSION_KEY, flags
from rollout.flag_state import PRECEDENCE, FlagState
from rollout.models import FlagChange, QueryFlag
from tests.legacy_world import SENTINEL, group, member, person
from tests.rollout_helpers import ROOT

pytestmark = pytest.mark.django_db

# An actor every rule can match: a legacy person in a group, at a site, of a client, and a staff Django user.
EVERYTHING = Actor(
    person_id=1,
    client_id=10,
    site_id=100,
    group_ids=frozenset({7}),
    user_id=5,
    user_group_ids=frozenset({3}),
    is_authenticated=True,
    is_staff=True,
)
# The precedence, top first: each rule's verdict, and flag data that makes it match EVERYTHING.
# A rule added to the chain without an entry here fails the tests.
MATCHING = {
    "everyone_off": (False, {"everyone": False}),
    "exclusions": (False, {"excluded_sites": frozenset({100})}),
    "everyone": (True, {"everyone": True}),
    "people": (True, {"people": frozenset({1})}),
    "people_groups": (True, {"people_groups": frozenset({7})}),
    "sites": (True, {"sites": frozenset({100})}),
    "clients": (True, {"clients": frozenset({10})}),
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


def test_exclusions_show_before_what_they_beat(bu_flag):
    operations.change_cohorts("bu_list", {"sites": [3], "people": [8]})
    operations.change_cohorts("bu_list", {"sites": [4], "people_groups": [9]}, excluded=True)
    operations.set_percent("bu_list", 10, "site")
    assert status_of("bu_list") == (
        "control for excluded_people_groups [9], excluded_sites [4]; candidate for people [8], sites [3], 10% by site"
    )
    operations.enable(["bu_list"])  # everyone=Yes makes the inclusions unreachable: they are not listed
    assert status_of("bu_list") == "control for excluded_people_groups [9], excluded_sites [4]; candidate for everyone"
    operations.kill(["bu_list"])
    assert status_of("bu_list") == "control for everyone (killed)"


def test_only_exclusions_serve_no_one_the_candidate(bu_flag):
    operations.change_cohorts("bu_list", {"clients": [2]}, excluded=True)
    assert status_of("bu_list") == "control for excluded_clients [2]"
    operations.change_cohorts("bu_list", remove={"clients": [2]}, excluded=True)
    assert status_of("bu_list") == "control (no rule)"


def test_the_admin_form_shows_the_rules_in_chain_order(admin_client, bu_flag):
    page = admin_client.get(reverse("admin:rollout_queryflag_change", args=[bu_flag.pk])).content.decode()
    fields = [f for rule in PRECEDENCE for f in rule.form]
    positions = [page.index(f'name="{field}"') for field in dict.fromkeys(fields)]
    assert positions == sorted(positions)


# --- waffle's testing field: not read, not shown, not recorded ------------------------------------------------


def test_testing_mode_cannot_pick_the_backend_and_is_neither_shown_nor_recorded(admin_client, bu_flag):
    bu_flag.testing = True
    bu_flag.save()
    assert not FlagChange.objects.filter(flag_name="orm.bu_list", changes__has_key="testing").exists()
    request = RequestFactory().get("/", {"dwft_orm.bu_list": "1"}, HTTP_DWFT_ORM_BU_LIST="1")
    request.COOKIES["dwft_orm.bu_list"] = "True"
    request.user = User.objects.create_user("tester")
    assert flag_is_active(request, "orm.bu_list") is False
    page = admin_client.get(reverse("admin:rollout_queryflag_change", args=[bu_flag.pk])).content.decode()
    assert 'name="testing"' not in page and 'name="users"' in page


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
        assert m2m_changed.disconnect(sender=through, dispatch_uid=f"rollout.history.{field}")
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
                dispatch_uid=f"rollout.history.{field}",
            )


def test_a_committed_change_reaches_the_cache_with_the_audit_log_gone(
    settings, bu_flag, django_capture_on_commit_callbacks
):
    settings.ROLLOUT_FLAG_RECHECK_SECONDS = 3600  # only an invalidation can refresh the states in this test
    ana = User.objects.create_user("ana")
    assert flags.get("orm.bu_list").sites == frozenset()
    with audit_log_disconnected():
        before = FlagChange.objects.count()
        cache.set(VERSION_KEY, "what other processes compare")
        with django_capture_on_commit_callbacks(execute=True):
            bu_flag.sites = [3]
            bu_flag.save()
        assert cache.get(VERSION_KEY) is None  # every other process reloads at its next recheck
        assert flags.get("orm.bu_list").sites == frozenset({3})
        modified = QueryFlag.objects.get(pk=bu_flag.pk).modified
        with django_capture_on_commit_callbacks(execute=True):
            bu_flag.users.add(ana)
        assert flags.get("orm.bu_list").users == frozenset({ana.pk})
        # Processes without the shared cache recompute the fingerprint, whose part is the modification time.
        assert QueryFlag.objects.get(pk=bu_flag.pk).modified > modified
        assert FlagChange.objects.count() == before
    bu_flag.users.remove(ana)
    assert FlagChange.objects.filter(flag_name="orm.bu_list", changes__users=["removed", [ana.pk]]).exists()


# --- a person's groups leave out the sentinel ------------------------------------------------------------------


def test_the_actor_of_a_user_has_the_persons_real_groups_only():
    team = group()
    worker = person(loginid="worker")
    for group_id in (team.id, SENTINEL, None):
        member(group_id, worker.id)
    actor = actor_for_user(User.objects.create_user("worker"))
    assert actor.person_id == worker.id and actor.group_ids == frozenset({team.id})
