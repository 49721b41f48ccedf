import asyncio
import dataclasses
import json
import time

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

import rollout
from query_backends.errors import InvalidQueryParams, UnknownQuery
from query_backends.registry import REGISTRY
from rollout.checks import flags_exist
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.flags.state import FlagState, bucket
from rollout.metrics.rollups import metrics
from rollout.models import FlagChange, QueryFlag
from rollout.routing.actors import Actor, actor_for_user
from rollout.routing.middleware import ActorMiddleware
from tests.legacy_world import ids_of
from tests.rollout_helpers import committed, python_process, reset_flags

ALICE = Actor(person=1, client=10, site=100, people_group=frozenset({7}))


# --- the rule chain -------------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize(
    "rules,rule",
    [
        ({"cohorts": {"person": frozenset({1})}}, "cohorts"),
        ({"cohorts": {"people_group": frozenset({7})}}, "cohorts"),
        ({"cohorts": {"site": frozenset({100})}}, "cohorts"),
        ({"cohorts": {"client": frozenset({10})}}, "cohorts"),
        ({"everyone": True}, "everyone"),
        ({"percent": 100.0}, "percent"),
    ],
)
def test_each_cohort_rule_alone_turns_the_candidate_on_for_its_actor_only(rules, rule):
    state = FlagState("orm.q", **rules)
    assert state.decide(ALICE) == (True, rule)
    stranger = Actor(person=2, client=11, site=101, people_group=frozenset({8}))
    assert state.is_active_for(stranger) is (rule in ("everyone", "percent"))


@pytest.mark.smoke
def test_no_rule_means_the_control():
    assert FlagState("orm.q").decide(ALICE) == (False, "default")
    assert FlagState("orm.q").decide(None) == (False, "default")


@pytest.mark.smoke
def test_everyone_off_beats_every_rule():
    state = FlagState("orm.q", everyone=False, cohorts={"person": {1}, "site": {100}}, percent=100.0)
    assert state.decide(ALICE) == (False, "everyone_off")


@pytest.mark.smoke
@pytest.mark.parametrize(
    "exclusion",
    [
        {"person": frozenset({1})},
        {"site": frozenset({100})},
        {"client": frozenset({10})},
        {"people_group": frozenset({7})},
    ],
)
def test_an_exclusion_beats_every_inclusion_and_everyone_on(exclusion):
    state = FlagState(
        "orm.q",
        everyone=True,
        cohorts={"person": {1}, "site": {100}, "client": {10}, "people_group": {7}},
        percent=100.0,
        exclusions=exclusion,
    )
    assert state.decide(ALICE) == (False, "exclusions")
    assert state.decide(Actor(person=2, client=11, site=101))[0] is True


@pytest.mark.smoke
def test_an_actor_in_any_of_the_flags_cohorts_gets_the_candidate():
    state = FlagState("orm.q", cohorts={"site": {100}, "client": {10}}, percent=0.0)
    assert state.decide(ALICE) == (True, "cohorts")
    assert state.decide(Actor(client=10, site=999)) == (True, "cohorts")
    assert state.decide(Actor(client=11, site=999)) == (False, "default")


@pytest.mark.smoke
def test_waffle_user_rules_apply_to_the_django_user_behind_the_actor():
    staff = Actor(user_id=5, is_authenticated=True, is_staff=True)
    assert FlagState("orm.q", staff=True).decide(staff) == (True, "users")
    assert FlagState("orm.q", staff=True).decide(Actor(user_id=6, is_authenticated=True))[0] is False
    assert FlagState("orm.q", users=frozenset({5})).is_active_for(staff)
    assert FlagState("orm.q", groups=frozenset({3})).is_active_for(
        Actor(user_id=9, user_group_ids=frozenset({3}), is_authenticated=True)
    )
    assert not FlagState("orm.q", authenticated=True).is_active_for(Actor())


# --- the sticky percentage --------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("target", [5, 10, 25, 50, 90])
def test_percentage_lands_within_two_points_over_ten_thousand_actors(target):
    state = FlagState("orm.job_needs", percent=float(target), percent_key="person")
    share = sum(state.is_active_for(Actor(person=i)) for i in range(10_000)) / 100
    assert abs(share - target) <= 2


@pytest.mark.smoke
def test_raising_the_percentage_only_adds_actors():
    actors = [Actor(person=i) for i in range(10_000)]
    previous = set()
    for percent in range(0, 101, 5):
        state = FlagState("orm.job_needs", percent=float(percent), percent_key="person")
        on = {a.one("person") for a in actors if state.is_active_for(a)}
        assert previous <= on
        previous = on
    assert len(previous) == 10_000


@pytest.mark.smoke
def test_percentage_by_site_switches_a_whole_site_together():
    state = FlagState("orm.job_needs", percent=50.0, percent_key="site")
    for site in range(200):
        verdicts = {state.is_active_for(Actor(person=p, site=site)) for p in range(20)}
        assert len(verdicts) == 1


@pytest.mark.django_db
def test_two_processes_agree_on_every_actors_bucket():
    code = "from rollout.flags.state import bucket\nprint([bucket('orm.job_needs', f'person:{i}') for i in range(500)])"
    out, err = python_process(code).communicate(timeout=60)
    assert json.loads(out) == [bucket("orm.job_needs", f"person:{i}") for i in range(500)], err


# --- dispatch ----------------------------------------------------------------------------------------------


@pytest.fixture
def bu_flag(db):
    return QueryFlag.objects.get(name="orm.bu_list")


def refresh():
    flags.invalidate()


@pytest.mark.django_db
def test_a_new_flag_sends_everyone_to_the_control(bu_flag):
    assert rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array") == REGISTRY.get("bu_list").run(
        "pg", {"bu_id": 1, "up": True, "down": True, "fmt": "array"}
    )
    decision = rollout.last_decision()
    assert (decision.backend, decision.role, decision.rule) == ("pg", "control", "default")
    superuser = actor_for_user(User.objects.create(username="root", is_superuser=True, is_staff=True))
    assert rollout.decide("bu_list", superuser)[0].role == "control"


@pytest.mark.django_db
def test_a_site_cohort_gets_the_candidate_and_others_the_control(bu_flag):
    (site,) = ids_of("SITE", 1)
    writes.change_cohort("bu_list", "site", add=[site])
    refresh()
    expected = REGISTRY.get("bu_list").run("pg", {"bu_id": 1, "up": True, "down": True, "fmt": "jsonb"})
    assert rollout.dispatch("bu_list", actor=Actor(site=site), bu_id=1, fmt="jsonb") == expected
    assert (rollout.last_decision().backend, rollout.last_decision().rule) == ("orm", "cohorts")
    rollout.dispatch("bu_list", actor=Actor(site=5), bu_id=1, fmt="jsonb")
    assert rollout.last_decision().backend == "pg"


@pytest.mark.django_db
def test_unknown_query_and_bad_params_fail_before_any_decision(bu_flag):
    with pytest.raises(UnknownQuery):
        rollout.dispatch("nope")
    before = rollout.last_decision()
    with CaptureQueriesContext(connection) as queries, pytest.raises(InvalidQueryParams, match="'bu_id'"):
        rollout.dispatch("bu_list", bu_id="1")
    assert len(queries) == 0 and rollout.last_decision() is before


@pytest.fixture
def broken_twin(monkeypatch):
    definition = REGISTRY.get("bu_list")

    def explode(*args, **kwargs):
        raise RuntimeError("twin bug")

    monkeypatch.setitem(REGISTRY._definitions, "bu_list", dataclasses.replace(definition, twin=explode))
    return definition


@pytest.mark.django_db
def test_fallback_serves_the_functions_answer_when_the_twin_raises(bu_flag, broken_twin):
    writes.enable(["bu_list"])
    refresh()
    answer = rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array")
    assert answer == broken_twin.run("pg", {"bu_id": 1, "up": True, "down": True, "fmt": "array"})
    decision = rollout.last_decision()
    assert decision.fell_back and decision.backend == "pg" and decision.rule == "everyone"
    assert metrics.snapshot()[("bu_list", "orm")]["fallbacks"] == 1


@pytest.mark.django_db
def test_without_fallback_the_twins_error_reaches_the_caller(bu_flag, broken_twin):
    bu_flag.everyone, bu_flag.fallback = True, False
    bu_flag.save()
    refresh()
    with pytest.raises(RuntimeError, match="twin bug"):
        rollout.dispatch("bu_list", actor=ALICE, bu_id=1)
    assert metrics.snapshot()[("bu_list", "orm")]["errors"] == 1


@pytest.mark.django_db
def test_a_missing_flag_serves_the_control_and_the_system_check_warns(bu_flag):
    bu_flag.delete()
    refresh()
    rollout.dispatch("bu_list", actor=ALICE, bu_id=1)
    assert (rollout.last_decision().backend, rollout.last_decision().rule) == ("pg", "missing_flag")
    warnings = flags_exist()
    assert [w.id for w in warnings] == ["rollout.W001"] and "orm.bu_list" in warnings[0].msg


@pytest.mark.django_db
def test_the_model_and_the_router_answer_by_the_same_rules(bu_flag):
    (client,) = ids_of("CLIENT", 1)
    writes.change_cohort("bu_list", "client", add=[client])
    bu_flag.refresh_from_db()
    actor = Actor(client=client)
    assert bu_flag.is_active_for(actor) and not bu_flag.is_active_for(Actor(client=client + 10_000))
    refresh()
    assert rollout.decide("bu_list", actor)[0].rule == "cohorts"


@pytest.mark.django_db
def test_the_middleware_resolves_a_users_legacy_person():
    from query_backends.models import People

    person = People.objects.exclude(loginid=None).exclude(id=-1).order_by("id").first()
    user = User.objects.create(username=person.loginid)
    user.groups.add(Group.objects.create(name="operators"))
    request = RequestFactory().get("/")
    request.user = user
    ActorMiddleware(lambda r: r)(request)
    assert (request.actor.one("person"), request.actor.one("client"), request.actor.one("site")) == (
        person.id,
        person.client_id,
        person.bu_id,
    )
    assert request.actor.user_group_ids == frozenset(user.groups.values_list("pk", flat=True))


# --- kill switch, history, propagation ------------------------------------------------------------------


@pytest.mark.django_db
def test_kill_command_sends_every_query_back_and_writes_history(capsys):
    writes.enable(["bu_list", "job_needs"])
    call_command("rollout", "kill")
    assert set(QueryFlag.objects.values_list("everyone", flat=True)) == {False}
    refresh()
    assert rollout.decide("bu_list", ALICE)[0].rule == "everyone_off"
    kills = FlagChange.objects.filter(reason="kill switch")
    assert kills.count() == len(REGISTRY.names()) and set(kills.values_list("source", flat=True)) == {"cli"}
    call_command("rollout", "history", "bu_list")
    out = capsys.readouterr().out
    assert "everyone: True → False (kill switch)" in out and "everyone: None → True" in out


@pytest.mark.django_db
def test_a_flag_change_reaches_another_process_within_two_seconds():
    """The other process watches a decision; this one commits a kill. Poll bound: 2 s."""
    committed(writes.enable, ["web_capabilities"])
    watcher = python_process(
        "from rollout.routing.router import decide\n"
        "assert decide('web_capabilities')[0].role == 'candidate'\n"
        "print('ready', flush=True); sys.stdin.readline(); start = time.monotonic()\n"
        "while decide('web_capabilities')[0].role == 'candidate' and time.monotonic() - start < 2:\n"
        "    time.sleep(0.005)\n"
        "print(decide('web_capabilities')[0].rule, flush=True)\n"
    )
    try:
        assert watcher.stdout.readline().strip() == "ready", watcher.stderr.read()
        committed(writes.kill, ["web_capabilities"])
        watcher.stdin.write("go\n")
        watcher.stdin.flush()
        assert watcher.stdout.readline().strip() == "everyone_off"
    finally:
        watcher.kill()
        committed(reset_flags)


@pytest.mark.django_db
def test_adispatch_runs_under_an_event_loop_and_calls_overlap(monkeypatch):
    definition = REGISTRY.get("bu_list")
    spans = []

    def slow_function(*args):
        started = time.monotonic()
        time.sleep(0.2)  # long enough that serial calls could not overlap
        result = definition.function(*args)
        spans.append((started, time.monotonic()))
        return result

    monkeypatch.setitem(REGISTRY._definitions, "bu_list", dataclasses.replace(definition, function=slow_function))

    async def many():
        return await asyncio.gather(
            *(rollout.adispatch("bu_list", actor=ALICE, bu_id=i, fmt="array") for i in range(1, 4))
        )

    results = asyncio.run(many())
    assert results == [
        definition.run("pg", {"bu_id": i, "up": True, "down": True, "fmt": "array"}) for i in range(1, 4)
    ]
    assert max(start for start, _ in spans) < min(end for _, end in spans), "the calls ran one after another"
