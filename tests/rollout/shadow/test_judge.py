"""Judging: matches, mismatches, each error kind, accepted differences, noise."""

import threading

import pytest

import rollout
from query_backends.errors import LegacyDataError
from query_backends.models import BusinessUnit
from query_backends.registry import REGISTRY, IgnoreRule
from rollout.flags.cache import flags
from rollout.lifecycle import retire
from rollout.metrics.rollups import metrics
from rollout.shadow.queue import background
from tests.rollout.shadow.support import ALICE, held_until, raise_runtime, records, rename_unit, replace, shadow_all
from tests.rollout_helpers import committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def test_a_shadowed_call_returns_the_served_answer_and_equal_twins_record_nothing():
    shadow_all("web_capabilities")
    answers = [rollout.dispatch("web_capabilities", actor=ALICE, root_id=i) for i in range(1, 6)]
    assert rollout.last_decision().shadow
    background.drain()
    numbers = metrics.snapshot()[("web_capabilities", "orm")]
    assert (numbers["comparisons"], numbers["matches"], numbers["discrepancies"]) == (5, 5, 0)
    assert any(answers) and records("web_capabilities") == []


def test_a_value_mismatch_is_recorded_once_per_fingerprint_with_its_diff(monkeypatch):
    definition = REGISTRY.get("bu_list")

    def drops_the_first(bu_id, up=True, down=True, fmt="text"):
        return definition.twin(bu_id, up, down, fmt)[1:]

    replace("bu_list", monkeypatch, twin=drops_the_first)
    shadow_all("bu_list")
    for bu_id in (1, 2, 3):
        rollout.dispatch("bu_list", actor=ALICE, bu_id=bu_id, fmt="array")
    background.drain()
    [record] = records("bu_list")
    assert (record.kind, record.occurrences, record.status) == ("mismatch", 3, "new")
    example = record.latest()
    control = definition.run("pg", definition.clean(example.params, parse=True))
    assert example.diff["missing"] == control[:1] and example.diff["extra"] == []
    assert example.actor["person"] == [1] and example.served_backend == "pg"
    assert example.control_duration > 0 and example.candidate_duration > 0


@pytest.mark.parametrize(
    "change,kind",
    [
        ({"twin": "raise_runtime"}, "candidate_error"),
        ({"function": "raise_legacy"}, "control_error"),
        ({"function": "raise_legacy", "twin": "raise_runtime"}, "different_errors"),
    ],
)
def test_each_error_kind_is_recorded_as_its_own_discrepancy(monkeypatch, change, kind):
    def raise_legacy(*args, **kwargs):
        raise LegacyDataError("bad legacy row")

    behaviours = {"raise_runtime": raise_runtime, "raise_legacy": raise_legacy}
    replace("web_capabilities", monkeypatch, **{k: behaviours[v] for k, v in change.items()})
    shadow_all("web_capabilities")
    for _ in range(2):
        try:
            rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        except LegacyDataError:
            pass  # the control failed while serving: the caller gets that error
    background.drain()
    [record] = records("web_capabilities")
    assert (record.kind, record.occurrences) == (kind, 2)
    example = record.latest()
    assert bool(example.candidate_error) == ("twin" in change)
    assert bool(example.control_error) == ("function" in change)


def test_an_accepted_difference_declared_in_the_registry_is_not_a_discrepancy(monkeypatch):
    definition = REGISTRY.get("bu_list")
    replace(
        "bu_list",
        monkeypatch,
        twin=lambda bu_id, up=True, down=True, fmt="text": definition.twin(bu_id, up, down, fmt)[1:],
        ignore=(IgnoreRule("first id is known to differ", lambda c, k, d: True),),
    )
    shadow_all("bu_list")
    rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array")
    background.drain()
    assert records("bu_list") == [] and metrics.snapshot()[("bu_list", "orm")]["matches"] == 1


def test_data_moving_under_a_comparison_is_noise_not_a_discrepancy(monkeypatch):
    unit = BusinessUnit.objects.get(id=1)
    shadow_all("bu_list")
    gate = threading.Event()
    held_until(gate, monkeypatch)  # the comparison runs after the data moved
    try:
        rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="jsonb")
        committed(rename_unit, 1, unit.buname + " (renamed)")
        gate.set()
        background.drain()
        stop = threading.Event()

        def writer():
            for i in range(1000):
                if stop.is_set():
                    break
                committed(rename_unit, 1, f"{unit.buname} {i}")

        thread = threading.Thread(target=writer)
        thread.start()
        for _ in range(30):
            rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="jsonb")
        background.drain()
        stop.set()
        thread.join()
    finally:
        gate.set()
        committed(rename_unit, 1, unit.buname)
    numbers = metrics.snapshot()[("bu_list", "orm")]
    assert numbers["noise"] >= 1 and numbers["discrepancies"] == 0 and records("bu_list") == []
    assert numbers["comparisons"] == 31


def dropped(*args, **kwargs):
    raise LegacyDataError("function fn_get_web_caps(bigint) does not exist")


def test_a_comparison_judged_after_its_function_was_dropped_by_a_retirement_is_a_drop(monkeypatch):
    # Sampled before the retirement, judged after the DROP: the control can only fail now. That is neither noise
    # nor a control error (recorded where the served answer was omitted, it blocked readiness again after a
    # migration back): the comparison is dropped.
    shadow_all("web_capabilities")
    gate = threading.Event()
    held_until(gate, monkeypatch)
    try:
        rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        retire.retire_flag("web_capabilities", "test")
        replace("web_capabilities", monkeypatch, function=dropped)
        flags.invalidate()
        assert flags.get("orm.web_capabilities").retired  # this process knows, as retirement waits for
    finally:
        gate.set()
    background.drain()
    numbers = metrics.snapshot()[("web_capabilities", "orm")]
    assert (numbers.get("comparisons", 0), numbers["drops"], numbers.get("control_errors", 0)) == (0, 1, 0)
    assert records("web_capabilities") == []
