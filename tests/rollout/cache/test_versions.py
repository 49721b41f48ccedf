"""Cached answers know the code that computed them: a deployed twin change never meets the old twin's answers."""

import dataclasses

import pytest

import rollout
from query_backends.registry import REGISTRY
from rollout import cache
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy
from rollout.routing.actors import Actor
from rollout.shadow.queue import background
from tests.rollout_helpers import python_process, wait_until_heard

pytestmark = pytest.mark.django_db
ALICE = Actor(person=1)
DEPLOYED_BU_LIST = REGISTRY.get("bu_list").twin


def changed_bu_list(bu_id, up=True, down=True, fmt="text"):
    """The same twin after a bad deploy: one id too many."""
    answer = DEPLOYED_BU_LIST(bu_id, up, down, fmt)
    return [*answer, 999_999] if isinstance(answer, list) else answer


@pytest.mark.usefixtures("no_discrepancies")
def test_a_twin_changed_under_a_warm_cache_is_compared_not_hidden_as_noise(monkeypatch):
    writes.enable(["bu_list"])
    writes.set_shadow("bu_list", 100)
    flags.invalidate()
    wait_until_heard("bt")
    before = rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array")
    assert rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array") == before
    assert rollout.last_decision().cache_hit is True  # warm, in memory and in Redis
    background.drain()
    deployed = dataclasses.replace(REGISTRY.get("bu_list"), twin=changed_bu_list)
    monkeypatch.setitem(REGISTRY._definitions, "bu_list", deployed)
    after = rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array")
    assert rollout.last_decision().cache_hit is False and after == [*before, 999_999]
    background.drain()
    assert list(Discrepancy.objects.values_list("kind", flat=True)) == ["mismatch"]
    assert metrics.snapshot()[("bu_list", "orm")].get("noise", 0) == 0


def test_the_deploy_id_is_part_of_every_key(settings):
    definition = REGISTRY.get("web_capabilities")
    wait_until_heard("capability")  # an earlier test's write, heard between the two calls, would be a miss
    params = definition.clean({"root_id": 1})
    assert definition.run_cached("orm", params)[1] is False
    assert definition.run_cached("orm", params)[1] == "memory"
    settings.ROLLOUT_DEPLOY_ID = "next-release"
    redeployed = dataclasses.replace(definition)  # a process started after the deploy
    assert redeployed.run_cached("orm", params)[1] is False
    assert redeployed.run_cached("orm", params)[1] == "memory"


def test_a_version_changes_with_the_source_and_is_the_same_in_another_process():
    """Processes share Redis entries only if they compute the same versions."""
    definition = REGISTRY.get("bu_list")
    assert cache.version_of(changed_bu_list) != cache.version_of(definition.twin)
    other = python_process(
        "from query_backends.registry import REGISTRY\nprint(sorted(REGISTRY.get('bu_list')._versions.items()))\n"
    )
    out, err = other.communicate(timeout=60)
    assert out.strip() == str(sorted(definition._versions.items())), err
