"""The shadow queue: fallbacks queued without sampling, records outside the caller's transaction, drops."""

import threading
import time

import pytest
from django.db import transaction

import rollout
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy
from rollout.shadow.queue import background
from tests.rollout.shadow.support import ALICE, held_until, records, serve_a_raising_twin, shadow_all
from tests.rollout_helpers import committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def test_a_fallback_is_recorded_even_without_shadow_sampling(monkeypatch):
    serve_a_raising_twin(monkeypatch)
    rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    background.drain()
    [record] = records("web_capabilities")
    assert record.kind == "candidate_error" and "RuntimeError: twin bug" in record.latest().candidate_error


def test_a_record_survives_the_callers_transaction_rolling_back(monkeypatch):
    serve_a_raising_twin(monkeypatch)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        raise ZeroDivisionError("the caller fails after the call")
    background.drain()
    assert committed(lambda: Discrepancy.objects.filter(query="web_capabilities").count()) == 1


def test_a_saturated_executor_drops_samples_and_never_blocks_the_caller(monkeypatch, settings):
    settings.ROLLOUT_SHADOW_WORKERS, settings.ROLLOUT_SHADOW_QUEUE_SIZE = 1, 2
    gate = threading.Event()
    held_until(gate, monkeypatch)
    shadow_all("bu_list")
    try:
        started = time.monotonic()
        answers = [rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array") for _ in range(10)]
        elapsed = time.monotonic() - started
    finally:
        gate.set()
    background.drain()
    numbers = metrics.snapshot()[("bu_list", "orm")]
    assert answers == [answers[0]] * 10 and elapsed < 10  # nobody waited for the gate
    assert numbers["drops"] >= 8 - 1 and numbers["drops"] + numbers["comparisons"] == 10
