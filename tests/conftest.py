import contextlib
import os

import pytest
from django.db import transaction
from hypothesis import settings as hypothesis_settings
from tqdm import tqdm

from query_backends import generator

WORLD_SEED = 20240501
# Timings are never asserted in tests, and hypothesis's per-example deadline (200 ms) is one: on a loaded machine
# it failed tests/rollout/test_equality.py (277 ms at load average 10). Examples are bounded by their count.
hypothesis_settings.register_profile("no-deadline", deadline=None)
hypothesis_settings.load_profile("no-deadline")
# Processes the tests start judge comparisons on their own threads; the Celery tests start workers themselves.
os.environ["ROLLOUT_SHADOW_BACKEND"] = "thread"
# Tests count every call they ask to compare; the shadow budget, which lowers that rate as it measures, is
# switched on by the tests of the budget itself.
os.environ["ROLLOUT_SHADOW_BUDGET"] = "0"
# The tests flush the Redis database in REDIS_URL; this key marks one they flushed before and may flush again.
OWNED_BY_TESTS = "pg-retire:test-suite-owns-this-database"


def quiet_progress(table, total):
    return tqdm(total=total, disable=True)


def _redis():
    from django.conf import settings

    if not settings.REDIS_CONFIGURED:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def pytest_sessionstart(session):
    """Refuse to run against a Redis database holding keys the tests did not write: they would erase them."""
    redis = _redis()  # pytest-django has set Django up by now
    if redis is None:
        return
    keys = redis.dbsize()
    if keys and not redis.exists(OWNED_BY_TESTS):
        url = redis.connection_pool.connection_kwargs
        pytest.exit(
            f"REDIS_URL points at Redis database {url.get('db', 0)}, which holds {keys} keys the tests did not write; "
            "the tests empty it (FLUSHDB). Point REDIS_URL at an empty database, e.g. redis://127.0.0.1:6379/15.",
            returncode=4,
        )
    redis.set(OWNED_BY_TESTS, "1")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Every test database holds the generated tiny world, read-only by convention.

    Background work and metrics are flushed before the test database goes, not at exit after it."""
    from rollout.shadow.queue import background

    with django_db_blocker.unblock():
        generator.load("tiny", seed=WORLD_SEED, progress_factory=quiet_progress)
        yield
        background.shutdown()
        from rollout.cache import generations

        generations.listener.stop()  # its connection would keep the test database from being dropped


@contextlib.contextmanager
def rolled_back():
    """A transaction that never commits: hypothesis examples share one test's database."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def fresh_rollout_state(request, settings):
    """Cache, flag snapshots and metrics start empty in every test (they outlive transactions by design).

    Comparisons run on this process's threads unless a test asks for Celery workers itself.
    """
    from django.core.cache import cache

    from rollout.cache import generations
    from rollout.flags.cache import flags
    from rollout.metrics.rollups import metrics
    from rollout.shadow.budget import budget

    settings.ROLLOUT_SHADOW_BACKEND = "thread"
    settings.ROLLOUT_SHADOW_BUDGET = 0
    budget.forget()
    cache.clear()
    _mark_owned()
    generations.listener.memory.clear()
    flags.invalidate()
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        metrics.reset()
    yield
    flags.invalidate()
    _mark_owned()  # a test may have flushed the database itself


def _mark_owned():
    redis = _redis()
    if redis is not None:
        try:
            redis.set(OWNED_BY_TESTS, "1")
        except Exception:  # noqa: BLE001 — a fault test may have broken this Redis on purpose
            pass


@pytest.fixture
def no_discrepancies():
    """Discrepancy records are committed by the recorder's own connection; clear them before the test
    (after it, the test's transaction may still hold locks on them) and let no write leak into the next."""
    from rollout.models import Discrepancy, GuardSample
    from rollout.shadow.queue import background
    from tests.rollout_helpers import committed

    committed(lambda: (Discrepancy.objects.all().delete(), GuardSample.objects.all().delete()))
    yield
    background.drain()


@pytest.fixture
def broken_bu_list(monkeypatch, no_discrepancies):
    """bu_list's twin drops the last element of every answer, and every call is compared in shadow."""
    import dataclasses

    from query_backends.registry import REGISTRY
    from rollout.flags import writes
    from rollout.flags.cache import flags

    definition = REGISTRY.get("bu_list")
    monkeypatch.setitem(
        REGISTRY._definitions,
        "bu_list",
        dataclasses.replace(
            definition, twin=lambda bu_id, up=True, down=True, fmt="text": definition.twin(bu_id, up, down, fmt)[:-1]
        ),
    )
    writes.set_shadow("bu_list", 100)
    flags.invalidate()
