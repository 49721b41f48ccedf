"""A function that writes is run for real once — by the call that served — and never again by shadow mode:
comparisons, replay, validation and the router benchmark run it in a transaction that rolls back, or read-only."""

import pytest
from django.db import DatabaseError, connection

import rollout
from rollout.experiments import registry
from rollout.flags.cache import flags
from rollout.models import Discrepancy, QueryFlag
from rollout.routing.benchmark import measure_router
from rollout.shadow.queue import background
from rollout.shadow.replay import replay
from rollout.validation import validate_query
from tests.rollout_helpers import committed
from tests.toy import ToyExperiment, ToyRegistry

pytestmark = pytest.mark.django_db(transaction=True)

SETUP = """
CREATE TABLE shadow_test_ticket (id bigserial PRIMARY KEY, n int NOT NULL);
CREATE FUNCTION shadow_test_open_ticket(n int) RETURNS int LANGUAGE sql VOLATILE AS
$$ INSERT INTO shadow_test_ticket (n) VALUES (n) RETURNING n * 2 $$;
"""
TEARDOWN = "DROP FUNCTION IF EXISTS shadow_test_open_ticket(int); DROP TABLE IF EXISTS shadow_test_ticket;"


class OpensATicket(ToyExperiment):
    """The control inserts a row and answers n * 2; the candidate answers the same, but n * 2 + 1 for n = 3."""

    def run(self, backend, params):
        n = params["n"]
        if backend == self.control:
            with connection.cursor() as cursor:
                cursor.execute("SELECT shadow_test_open_ticket(%s)", [n])
                return cursor.fetchone()[0]
        return n * 2 + (n == 3)


REGISTRY = ToyRegistry(OpensATicket("ticket"))


def tickets():
    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM shadow_test_ticket ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def ticket(settings):
    settings.ROLLOUT_REGISTRY = "tests.rollout.shadow.test_writing_functions.REGISTRY"
    registry.cache_clear()
    with connection.cursor() as cursor:
        cursor.execute(TEARDOWN + SETUP)
    QueryFlag.objects.create(name="orm.ticket", shadow_percent=100)  # the control serves, every call compared
    flags.invalidate()
    yield
    background.drain()
    with connection.cursor() as cursor:
        cursor.execute(TEARDOWN)
    Discrepancy.objects.filter(query="ticket").delete()
    registry.cache_clear()
    flags.invalidate()


def test_shadow_replay_and_validation_never_write_a_second_time(ticket):
    assert [rollout.dispatch("ticket", n=n) for n in (1, 2, 3)] == [2, 4, 6]
    background.drain()
    assert tickets() == [1, 2, 3]  # one row per served call, none from the comparisons
    [discrepancy] = committed(lambda: list(Discrepancy.objects.filter(query="ticket")))
    assert discrepancy.kind == "mismatch"  # the comparison did run the control: it compared, then rolled back

    assert replay(discrepancy.id)["agree"] is False
    report = validate_query("ticket", [{"n": 4}, {"n": 3}], registry=REGISTRY)
    assert (report.equal, report.different) == (1, 1)
    assert tickets() == [1, 2, 3]


def test_the_router_benchmark_runs_read_only_and_refuses_a_function_that_writes(ticket):
    with pytest.raises(DatabaseError, match="read-only"):
        measure_router("ticket", [{"n": 1}], rounds=2)
    assert tickets() == []
    with connection.cursor() as cursor:  # and the session is writable again afterwards
        cursor.execute("SHOW default_transaction_read_only")
        assert cursor.fetchone()[0] == "off"
