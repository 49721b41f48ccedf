"""Whose calls PostgreSQL's statistics can see: retirement compares them with the application's own."""

import pytest
from django.db import connections

from query_backends.registry import REGISTRY
from rollout.metrics.rollups import FUNCTION_CALLS, metrics
from rollout.postgres import dependencies
from rollout.shadow.judge import sides, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def alias():
    """Add a database alias (never connected to here) with the default's settings changed as asked."""
    added = []

    def add(name, **changes):
        connections.settings[name] = {**connections["default"].settings_dict, **changes}
        added.append(name)
        return name

    yield add
    for name in added:
        del connections[name]
        connections.settings.pop(name)


def test_a_call_on_a_replica_is_not_counted_where_the_primarys_statistics_are_read(alias):
    assert dependencies.counted_here("default")
    assert dependencies.counted_here(alias("same_database"))  # another alias of the same database
    assert not dependencies.counted_here(alias("other_name", NAME="a_replica"))
    assert not dependencies.counted_here(alias("other_host", HOST="replica.internal"))
    assert not dependencies.counted_here(alias("other_port", PORT="6543"))


def test_a_comparison_on_the_default_database_still_counts_the_functions_call(monkeypatch):
    experiment = REGISTRY.get("web_capabilities")
    params = experiment.clean({"root_id": 1})
    counted = []
    increment = metrics.increment
    monkeypatch.setattr(metrics, "increment", lambda *args, **kw: (counted.append(args[2]), increment(*args, **kw))[1])
    with snapshot("default"):
        control, candidate = sides(experiment, params, "default")
    assert control.value == candidate.value and not control.raised
    assert counted.count(FUNCTION_CALLS) == 1
