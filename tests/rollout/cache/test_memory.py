"""The in-process tier is bounded in bytes, keeps no answer over its per-entry limit, and hands out read-only
answers that behave like the plain ones."""

import copy
import json
import pickle
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from rollout import cache
from rollout.cache import generations
from rollout.cache.frozen import freeze
from rollout.cache.memory import MemoryTier
from tests.rollout_helpers import wait_until_heard

pytestmark = pytest.mark.django_db
UNITS = SimpleNamespace(name="numbers", reads=("bt",), cache="always")


def numbers(start, n=1000):
    return list(range(start * 10_000, start * 10_000 + n))


@pytest.fixture
def tier(monkeypatch):
    """This process's in-process tier, replaced by one of 100 kB holding at most 50 kB per answer."""
    wait_until_heard("bt")  # an earlier test's write heard mid-test would make a hit a miss
    small = MemoryTier(budget=100_000, entry_limit=50_000)
    monkeypatch.setattr(generations.listener, "memory", small)
    return small


def test_the_tier_evicts_the_least_recently_used_to_stay_within_its_bytes(tier):
    _, one = freeze(numbers(0))
    assert 28_000 < one < 50_000  # a thousand ints and their list
    for start in range(10):
        assert cache.cached(UNITS, {"start": start}, lambda start=start: numbers(start)) == (numbers(start), False)
        assert tier.nbytes <= tier.budget
    assert len(tier) == tier.budget // one
    assert cache.cached(UNITS, {"start": 9}, lambda: numbers(9))[1] == "memory"
    assert cache.cached(UNITS, {"start": 0}, lambda: numbers(0))[1] == "redis"  # evicted here, shared there


def test_an_answer_over_the_entry_limit_is_served_but_not_kept_in_process(tier):
    big = numbers(1, n=5000)
    assert freeze(big)[1] > tier.entry_limit
    assert cache.cached(UNITS, {"start": 1}, lambda: big) == (big, False)
    assert len(tier) == 0 and tier.nbytes == 0
    assert cache.cached(UNITS, {"start": 1}, lambda: big) == (big, "redis")
    assert len(tier) == 0


def test_a_zero_budget_keeps_nothing_in_process(monkeypatch):
    wait_until_heard("bt")
    monkeypatch.setattr(generations.listener, "memory", MemoryTier(budget=0, entry_limit=4096))
    cache.cached(UNITS, {"start": 2}, lambda: numbers(2, n=3))
    assert cache.cached(UNITS, {"start": 2}, lambda: numbers(2, n=3))[1] == "redis"


ROWS = [
    {"id": 1, "name": "a", "at": datetime(2026, 1, 1, tzinfo=UTC), "price": Decimal("1.50"), "tags": ["x"]},
    {"id": 2, "name": None, "at": None, "price": None, "tags": []},
]


def test_a_read_only_answer_equals_serialises_and_pickles_like_the_plain_one():
    frozen, size = freeze(ROWS)
    assert frozen == ROWS and size > 0
    assert json.dumps(frozen, default=str) == json.dumps(ROWS, default=str)
    assert pickle.loads(pickle.dumps(frozen)) == ROWS
    for change in (lambda a: a.append(1), lambda a: a[0].update(id=3), lambda a: a[0]["tags"].append("y")):
        with pytest.raises(TypeError, match="read-only"):
            change(frozen)
    mine = copy.deepcopy(frozen)
    assert mine == ROWS
    plain = copy.copy(frozen)
    plain.append("mine")  # a shallow copy is a plain list the caller owns
    assert len(frozen) == 2


def test_an_answer_of_other_objects_is_not_kept_in_process(tier):
    odd = [object()]
    assert freeze(odd) is None
    value, hit = cache.cached(UNITS, {"start": 3}, lambda: odd)
    assert value is odd and hit is False and len(tier) == 0
