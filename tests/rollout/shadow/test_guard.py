"""The guard: trips at its thresholds after the minimum sample, never turns a flag on."""

import uuid

import pytest

from rollout.flags import writes
from rollout.models import FlagChange, QueryFlag
from rollout.shadow import guard
from rollout.shadow import result as kinds
from rollout.shadow.observation import Observation
from rollout.shadow.result import Result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def guard_flag(**thresholds):
    flag = QueryFlag.objects.get(name="orm.bu_list")
    for field, value in {
        "everyone": True,
        "guard_window": 10,
        "guard_min_sample": 10,
        "guard_max_discrepancy_rate": 0.2,
        "guard_max_error_rate": 1.0,
        "guard_max_latency_ratio": None,
        **thresholds,
    }.items():
        setattr(flag, field, value)
    flag.save()
    return flag


def feed(outcomes, control=0.01, candidate=0.01):
    tripped = []
    for discrepancy in outcomes:
        result = Result(
            comparison_id=str(uuid.uuid4()),
            query="bu_list",
            flag="orm.bu_list",
            kind=kinds.MISMATCH if discrepancy else kinds.MATCHED,
            served_backend="orm",
            candidate_backend="orm",
            control=Observation("pg", duration=control),
            candidate=Observation("orm", duration=candidate),
        )
        guard.add_samples([result])
        tripped.append(guard.evaluate(result))
    return tripped


def test_the_guard_trips_exactly_at_its_threshold_after_the_minimum_sample():
    guard_flag()
    # 9 comparisons, 2 discrepancies: a rate above 0.2, but under the minimum sample.
    assert feed([False] * 7 + [True, True]) == [None] * 9
    assert QueryFlag.objects.get(name="orm.bu_list").everyone is True
    # The 10th comparison brings the sample to 10 and the rate to exactly 0.2: trip.
    assert feed([False]) == ["discrepancy rate"]
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert flag.everyone is False and flag.guard_tripped_at is not None
    assert "discrepancy_rate=0.2" in flag.guard_reason and "sample=10" in flag.guard_reason
    change = FlagChange.objects.filter(flag_name="orm.bu_list", source="guard").get()
    assert change.changes["everyone"] == [True, False] and "discrepancy rate" in change.reason


def test_comparisons_queued_before_a_retirement_never_make_the_guard_write_a_retired_flag():
    from rollout.lifecycle import retire

    guard_flag()
    retire.retire_flag("bu_list", "test")
    assert feed([True] * 10) == [None] * 10  # a write of a retired flag raised, and with it the publish
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert flag.guard_tripped_at is None and flag.retired_at is not None


def test_the_guard_does_not_trip_below_its_threshold():
    guard_flag()
    assert feed([False] * 9 + [True] + [False] * 5) == [None] * 15
    assert QueryFlag.objects.get(name="orm.bu_list").everyone is True


def test_the_guard_trips_on_the_latency_ratio_and_never_turns_a_flag_on():
    flag = guard_flag(guard_max_latency_ratio=3.0, everyone=None, cohorts={"site": [5]})
    assert feed([False] * 10, control=0.010, candidate=0.029) == [None] * 10
    assert "latency ratio" in feed([False] * 10, control=0.010, candidate=0.030)
    flag.refresh_from_db()
    assert flag.everyone is False and flag.cohorts == {"site": [5]}
    writes.clear_guard("bu_list")
    flag.refresh_from_db()
    assert flag.guard_tripped_at is None and flag.everyone is False
