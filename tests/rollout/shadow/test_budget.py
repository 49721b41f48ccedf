"""The shadow budget: measured from what calls and comparisons cost, it lowers the sampling rate and says so."""

import re

import pytest
from django.urls import reverse

import rollout
from rollout.experiments import registry
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import QueryFlag
from rollout.shadow.budget import budget, caps_from
from rollout.shadow.queue import background

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def test_the_cap_is_the_budget_times_a_calls_cost_over_a_comparisons():
    totals = {
        ("q", "pg"): {"calls": 90, "served_us": 90_000},  # 1 ms per call, on either side
        ("q", "orm"): {"calls": 10, "served_us": 10_000, "comparisons": 50, "shadow_us": 100_000},  # 2 ms each
        ("cheap", "orm"): {"calls": 10, "served_us": 100_000, "comparisons": 10, "shadow_us": 1_000},
        ("unmeasured", "pg"): {"calls": 10, "served_us": 10_000},
    }
    assert caps_from(totals, 0.10) == {"q": pytest.approx(0.05), "cheap": 1.0}


@pytest.fixture
def toy(settings):
    settings.ROLLOUT_REGISTRY = "tests.toy.REGISTRY"
    registry.cache_clear()
    QueryFlag.objects.create(name="orm.toy", shadow_percent=100)  # the control serves; every call asked for
    flags.invalidate()
    yield
    background.drain()
    registry.cache_clear()
    flags.invalidate()


def compared(calls):
    before = metrics.snapshot().get(("toy", "new"), {}).get("comparisons", 0)
    for n in range(calls):
        rollout.dispatch("toy", n=n)
    background.drain()
    return metrics.snapshot()[("toy", "new")]["comparisons"] - before


def test_over_the_budget_fewer_calls_are_compared_and_the_dashboard_says_so(toy, admin_client, settings):
    settings.ROLLOUT_SHADOW_BUDGET = 0.10
    # Nothing measured yet: a comparison repeats the served call, so at most the budget's share (10 %) is compared.
    assert budget.cap("toy") == 0.10
    assert 0 < compared(400) < 100
    # A comparison runs both sides in a snapshot of its own: far more than the toy's call, which does nothing.
    budget.refresh()
    cap = budget.cap("toy")
    assert cap is not None and cap < 0.10
    assert compared(200) < 60
    page = admin_client.get(reverse("rollout-dashboard")).content.decode()
    # Brief under the serving rule, so the overview's rows stay two lines high; the sentence on hover.
    [(why, brief)] = re.findall(r'<small class="shadow" title="([^"]*)">([^<]*)</small>', page)
    assert re.fullmatch(r"shadow 100 % → [\d.]+ % \(budget\)", brief)
    assert why.startswith("shadow 100 % asked, ") and why.endswith("% compared: over the shadow budget")


def test_with_the_budget_off_every_call_asked_for_is_compared(toy, settings):
    settings.ROLLOUT_SHADOW_BUDGET = 0
    compared(40)
    budget.refresh()
    assert budget.cap("toy") is None and compared(100) == 100
