"""rollout routes any experiment that keeps rollout.contract: a toy with no legacy domain at all."""

import pytest
from django.urls import reverse

import rollout
from rollout.contract import Experiment, Registry
from rollout.experiments import registry
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, QueryFlag
from rollout.shadow.queue import background
from tests.rollout_helpers import committed
from tests.toy import REGISTRY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


@pytest.fixture
def toy(settings):
    settings.ROLLOUT_REGISTRY = "tests.toy.REGISTRY"
    registry.cache_clear()
    QueryFlag.objects.create(name="orm.toy", everyone=True, shadow_percent=100)
    flags.invalidate()
    yield
    registry.cache_clear()
    flags.invalidate()


def test_the_toy_keeps_the_contract():
    assert isinstance(REGISTRY, Registry) and isinstance(REGISTRY.get("toy"), Experiment)


def test_the_router_and_shadow_mode_route_the_toy(toy, monkeypatch):
    monkeypatch.setenv("TOY_WRONG", "3")
    assert rollout.dispatch("toy", n=2) == 4
    assert rollout.last_decision().backend == "new"  # the experiment names its own sides
    assert rollout.dispatch("toy", n=3) == 7  # the candidate serves, wrong for 3
    background.drain()
    found = committed(lambda: list(Discrepancy.objects.filter(query="toy").values_list("kind", "occurrences")))
    assert found == [("mismatch", 1)]
    numbers = metrics.snapshot()[("toy", "new")]
    assert (numbers["calls"], numbers["comparisons"], numbers["discrepancies"]) == (2, 2, 1)


def test_the_admin_the_api_and_the_dashboard_show_the_toy(toy, admin_client):
    assert "orm.toy" in admin_client.get(reverse("admin:rollout_queryflag_changelist")).content.decode()
    response = admin_client.get("/api/queries/toy?n=5")
    assert response.status_code == 200 and response.json()["result"] == 10
    assert admin_client.get("/api/queries/toy?n=x").json()["parameter"] == "n"
    assert "toy" in admin_client.get(reverse("rollout-dashboard")).content.decode()
