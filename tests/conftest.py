import contextlib
import os

import pytest
from django.db import transaction
from tqdm import tqdm

from query_backends import generator

WORLD_SEED = 20240501
# Processes the tests start judge comparisons on their own threads; the Celery tests start workers themselves.
os.environ["ROLLOUT_SHADOW_BACKEND"] = "thread"


def quiet_progress(table, total):
    return tqdm(total=total, disable=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Every test database holds the generated tiny world, read-only by convention.

    Background work and metrics are flushed before the test database goes, not at exit after it."""
    from rollout.background import background

    with django_db_blocker.unblock():
        generator.load("tiny", seed=WORLD_SEED, progress_factory=quiet_progress)
        yield
        background.shutdown()


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

    from rollout.flag_cache import flags
    from rollout.metrics import metrics

    settings.ROLLOUT_SHADOW_BACKEND = "thread"
    cache.clear()
    flags.invalidate()
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        metrics.reset()
    yield
    flags.invalidate()


@pytest.fixture
def no_discrepancies():
    """Discrepancy records are committed by the recorder's own connection; clear them before the test
    (after it, the test's transaction may still hold locks on them) and let no write leak into the next."""
    from rollout.background import background
    from rollout.models import Discrepancy, GuardSample
    from tests.rollout_helpers import committed

    committed(lambda: (Discrepancy.objects.all().delete(), GuardSample.objects.all().delete()))
    yield
    background.drain()
