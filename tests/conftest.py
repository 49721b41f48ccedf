import contextlib

import pytest
from django.db import transaction
from tqdm import tqdm

from query_backends import generator

WORLD_SEED = 20240501


def quiet_progress(table, total):
    return tqdm(total=total, disable=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Every test database holds the generated tiny world, read-only by convention."""
    with django_db_blocker.unblock():
        generator.load("tiny", seed=WORLD_SEED, progress_factory=quiet_progress)


@contextlib.contextmanager
def rolled_back():
    """A transaction that never commits: hypothesis examples share one test's database."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def fresh_rollout_state():
    """Cache, flag snapshots and metrics start empty in every test (they outlive transactions by design)."""
    from django.core.cache import cache

    from rollout.flag_cache import flags
    from rollout.metrics import metrics

    cache.clear()
    flags.invalidate()
    metrics.reset()
    yield
    flags.invalidate()


@pytest.fixture
def no_discrepancies():
    """Discrepancy records are committed by the recorder's own connection; clear them before the test
    (after it, the test's transaction may still hold locks on them) and let no write leak into the next."""
    from rollout import shadow
    from rollout.models import Discrepancy
    from tests.rollout_helpers import committed

    committed(lambda: Discrepancy.objects.all().delete())
    yield
    shadow.executor.drain()
