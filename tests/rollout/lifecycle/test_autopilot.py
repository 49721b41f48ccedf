"""The autopilot on real PostgreSQL: it advances a query whose evidence meets its stage's gates (recording why),
waits while a gate is unmet, pauses — never advances — when the guard trips or the evidence regresses, and loses
to an operator (or a second tick) moving the flag at the same moment. Time is controlled here: the stage's start
is moved back through flags.writes, and the tick is given its `now`."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from query_backends.registry import REGISTRY
from rollout.flags import writes
from rollout.lifecycle import autopilot, evidence
from rollout.lifecycle.autopilot import ADVANCED, PAUSED, RACED, WAITING
from rollout.lifecycle.tasks import autopilot as autopilot_task
from rollout.models import FlagChange, QueryFlag
from rollout.operations import OperationError
from rollout.shadow import result as outcome
from rollout.shadow.observation import Observation
from rollout.shadow.publish import publish
from rollout.shadow.result import Result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]
GATES = {"min_comparisons": 20, "max_discrepancy_rate": 0.05, "max_p95_ratio": 3, "min_minutes": 30}
PLAN = {
    "stages": [
        {"name": "shadow", "shadow": 100, "gates": GATES},
        {"name": "ten", "percent": 10, "shadow": 50, "gates": GATES},
        {"name": "everyone", "everyone": True, "shadow": 5},
    ]
}


def flag():
    return QueryFlag.objects.get(name="orm.bu_list")


def started(minutes_ago=0, **guard):
    """bu_list on PLAN at its first stage, which began `minutes_ago` (time moved through flags.writes)."""
    autopilot.set_plan("bu_list", PLAN)
    autopilot.start("bu_list")
    if guard:
        writes.set_guard("bu_list", **guard)
    if minutes_ago:
        backdate(minutes_ago)
    return flag()


def backdate(minutes):
    def change(f):
        f.stage_since = timezone.now() - timedelta(minutes=minutes)
        return ["stage_since"]

    writes.write(["orm.bu_list"], change, source="test")


def compared(n, discrepancies=0, control=0.010, candidate=0.012):
    """Publish n judged comparisons of bu_list (the last `discrepancies` of them mismatches), as a worker does."""
    definition = REGISTRY.get("bu_list")
    right, wrong = "1,2,3", "1,2"
    results = []
    for i in range(n):
        bad = i >= n - discrepancies
        answer = wrong if bad else right
        results.append(
            Result(
                comparison_id=str(uuid.uuid4()),
                query="bu_list",
                flag="orm.bu_list",
                kind=outcome.MISMATCH if bad else outcome.MATCHED,
                served_backend="pg",
                candidate_backend="orm",
                control=Observation("pg", value=right, duration=control),
                candidate=Observation("orm", value=answer, duration=candidate),
                difference=definition.compare(right, answer),
                params={"bu_id": 1},
                actor={"site": [3], "client": [10]},
            )
        )
    publish(results)


def test_it_waits_while_a_gate_is_unmet_and_advances_once_every_gate_is_met_recording_why():
    started(minutes_ago=5)
    compared(25)
    [move] = autopilot.tick()
    assert move.outcome == WAITING and "min_minutes" in move.reason and "min_comparisons" not in move.reason
    assert flag().plan_stage == 0
    [move] = autopilot.tick(now=timezone.now() + timedelta(minutes=30))
    assert (move.outcome, move.stage, move.to) == (ADVANCED, "shadow", "ten")
    after = flag()
    assert (after.plan_stage, float(after.percent), float(after.shadow_percent)) == (1, 10.0, 50.0)
    change = FlagChange.objects.filter(flag_name="orm.bu_list", source="autopilot").get()
    assert change.changes["plan_stage"] == [0, 1] and "shadow → ten" in change.reason
    assert "min_comparisons 25" in change.reason and "max_discrepancy_rate 0" in change.reason
    # The new stage starts from nothing: the comparisons of the stage before do not count for it.
    [move] = autopilot.tick(now=timezone.now() + timedelta(minutes=60))
    assert move.outcome == WAITING and "min_comparisons: 0" in move.reason and flag().plan_stage == 1


def test_a_tripped_guard_pauses_the_plan_and_nothing_advances(settings):
    started(minutes_ago=60, window=20, min_sample=20, max_discrepancy_rate=0.1)
    compared(20, discrepancies=3)  # the guard's own threshold: it trips and kills
    tripped = flag()
    assert tripped.guard_tripped_at is not None and tripped.everyone is False
    [move] = autopilot.tick(now=timezone.now() + timedelta(hours=2))
    assert move.outcome == PAUSED and move.reason.startswith("guard tripped")
    paused = flag()
    assert paused.plan_paused and paused.plan_stage == 0 and paused.everyone is False
    assert FlagChange.objects.filter(flag_name="orm.bu_list", source="autopilot", reason__contains="paused").exists()
    assert autopilot.tick(now=timezone.now() + timedelta(hours=3)) == []  # a paused plan is left alone
    with pytest.raises(OperationError, match="clear-guard"):
        autopilot.resume("bu_list")


def test_evidence_that_regresses_pauses_the_plan_without_the_guard():
    started(minutes_ago=60, window=200, min_sample=200)  # the guard will not trip on 40
    compared(40, discrepancies=4)  # 10 % against the stage's 5 %
    [move] = autopilot.tick(now=timezone.now() + timedelta(hours=1))
    assert move.outcome == PAUSED and "evidence regressed: max_discrepancy_rate" in move.reason
    assert flag().plan_paused and flag().plan_stage == 0 and flag().guard_tripped_at is None


def test_a_slow_candidate_is_held_back_by_the_latency_gate():
    started(minutes_ago=60)
    compared(25, control=0.010, candidate=0.050)
    [move] = autopilot.tick(now=timezone.now() + timedelta(hours=1))
    assert move.outcome == PAUSED and "max_p95_ratio 5" in move.reason


def test_every_gate_counts_only_what_happened_since_the_stage_began_the_latency_gate_too():
    started(minutes_ago=60)
    compared(25, control=0.010, candidate=0.050)  # a slow twin in the first stage
    first = evidence.gather(flag())
    assert (first.comparisons, first.latency_sample, round(first.p95_ratio)) == (25, 25, 5)
    autopilot.skip("bu_list")  # the next stage begins now: the slow comparisons are the stage before's
    compared(5, control=0.010, candidate=0.011)
    found = evidence.gather(flag(), now=timezone.now() + timedelta(minutes=2))
    assert found.latency_sample == 5 and found.p95_ratio == pytest.approx(1.1)
    assert not any(check.regressed for check in found.check(GATES))


def test_an_operator_pause_at_the_same_moment_wins_over_the_autopilot():
    stale = started(minutes_ago=60)
    compared(25)
    autopilot.pause("bu_list", "looking at a report")  # after the autopilot read the flag, before it wrote
    move = autopilot.step(stale, now=timezone.now() + timedelta(hours=1))
    assert move.outcome == RACED
    after = flag()
    assert after.plan_stage == 0 and after.plan_paused and after.plan_paused_reason == "looking at a report"
    assert not FlagChange.objects.filter(flag_name="orm.bu_list", source="autopilot").exists()


def test_an_operators_shadow_change_at_the_same_moment_wins_over_the_autopilot():
    """The tick judged the flag before an operator changed its shadow: it must not advance on evidence that
    did not see that write, and the operator's value stays."""
    stale = started(minutes_ago=60)
    compared(25)
    writes.set_shadow("bu_list", 30)  # after the autopilot read the flag, before it wrote; the plan stage unchanged
    move = autopilot.step(stale, now=timezone.now() + timedelta(hours=1))
    assert move.outcome == RACED
    after = flag()
    assert (after.plan_stage, float(after.shadow_percent)) == (0, 30.0)
    assert not FlagChange.objects.filter(flag_name="orm.bu_list", source="autopilot").exists()
    [move] = autopilot.tick(now=timezone.now() + timedelta(hours=1))  # the next tick judges the flag as it is
    assert move.outcome == ADVANCED and flag().plan_stage == 1


def test_two_ticks_at_once_advance_a_query_once():
    stale = started(minutes_ago=60)
    compared(25)
    now = timezone.now() + timedelta(hours=1)
    assert autopilot.step(stale, now).outcome == ADVANCED
    assert autopilot.step(stale, now).outcome == RACED
    assert flag().plan_stage == 1


def test_operator_moves_skip_back_pause_resume_are_flag_writes_and_a_kill_survives_them():
    started()
    autopilot.skip("bu_list")
    assert (flag().plan_stage, float(flag().percent)) == (1, 10.0)
    writes.kill(["bu_list"])
    autopilot.back("bu_list")
    back = flag()
    assert (back.plan_stage, float(back.percent), back.everyone) == (0, 0.0, False)  # still killed
    with pytest.raises(OperationError, match="first of its plan"):
        autopilot.back("bu_list")
    autopilot.pause("bu_list")
    autopilot.resume("bu_list")
    reasons = list(FlagChange.objects.filter(flag_name="orm.bu_list", source="cli").values_list("reason", flat=True))
    assert {"plan skipped to ten", "plan stepped back to shadow", "plan resumed"} <= set(reasons)
    # A killed query is paused by the autopilot, not advanced.
    backdate(60)
    [move] = autopilot.tick(now=timezone.now() + timedelta(hours=1))
    assert move.outcome == PAUSED and "killed" in move.reason


def test_the_beat_task_runs_the_tick():
    assert settings.CELERY_BEAT_SCHEDULE["rollout-autopilot"]["task"] == autopilot_task.name == "rollout.autopilot"
    started(minutes_ago=60)
    compared(25)
    backdate(120)
    autopilot_task()  # what beat sends a worker; here, run in this process
    assert flag().plan_stage == 1


def test_the_cli_runs_the_autopilot_once(capsys):
    started(minutes_ago=60)
    compared(25)
    backdate(120)
    call_command("rollout", "autopilot")
    assert "bu_list: advanced at shadow → ten" in capsys.readouterr().out
