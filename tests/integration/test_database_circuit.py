"""The database stopped under the pool backend: callers refused at once while it is gone, served once it is back.

A private PostgreSQL cluster (tests/private_postgres.py) is stopped and started by its pid; the backend
under test is settings/postgresql on a connection alias of its own. No timing is asserted: what is
asserted is who waits on the pool, what is raised, what is logged and that service resumes.
"""

import logging
import threading
import time

import pytest
from django.db import OperationalError, connections
from django.db.utils import ConnectionHandler
from psycopg_pool import PoolTimeout

from settings import BASE_DIR
from settings.environment import database_config
from settings.postgresql.circuit import DatabaseUnreachable, circuit_for
from tests.private_postgres import private_postgres  # noqa: F401 — a fixture

ALIAS = "circuit-test"
OPENED = "the database 'circuit-test' unreachable"
CLOSED = "the database 'circuit-test' reachable again"


@pytest.fixture
def alias(django_db_blocker):
    """connections[ALIAS] on a URL (settings/environment.py's config, a short pool timeout), then its circuit."""

    def configure(url, **environ):
        config = database_config({"DATABASE_URL": url, "DB_POOL_TIMEOUT": "0.5", **environ}, BASE_DIR)
        connections.settings[ALIAS] = ConnectionHandler({"default": config, ALIAS: config}).settings[ALIAS]
        return connections[ALIAS], circuit_for(ALIAS)

    with django_db_blocker.unblock():  # the connections here go to the private cluster, not the test database
        try:
            yield configure
        finally:
            connections[ALIAS].close()
            connections[ALIAS].close_pool()
            del connections[ALIAS]
            del connections.settings[ALIAS]
            circuit_for(ALIAS).closed()


def select_one(connection):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def failure(connection):
    with pytest.raises(OperationalError) as raised:
        select_one(connection)
    return raised.value.__cause__


def test_a_stopped_database_opens_the_circuit_and_its_return_closes_it(private_postgres, alias, caplog):  # noqa: F811
    caplog.set_level(logging.WARNING, logger="settings.postgresql")
    connection, circuit = alias(private_postgres.url)
    assert select_one(connection) == 1
    private_postgres.stop()

    # The first caller waits the pool's timeout, then one direct attempt tells "gone" from "busy".
    assert isinstance(failure(connection), DatabaseUnreachable)
    assert circuit.open
    # While it is open, callers between probes never reach the pool.
    pool, requests = connection.pool, connection.pool.get_stats()["requests_num"]
    refusals = [failure(connection) for _ in range(20)]
    assert all(isinstance(error, DatabaseUnreachable) for error in refusals)
    assert connection.pool is pool and pool.get_stats()["requests_num"] == requests

    private_postgres.start()
    answers = []
    for _ in range(200):  # a probe is let through every PROBE_SECONDS
        try:
            answers.append(select_one(connection))
            break
        except OperationalError as error:
            assert isinstance(error.__cause__, DatabaseUnreachable)
            time.sleep(0.05)
    assert answers == [1] and not circuit.open
    assert connection.pool is not pool  # a fresh pool, not the old one's back-off
    assert select_one(connection) == 1
    messages = [record.getMessage() for record in caplog.records if record.name == "settings.postgresql"]
    # One warning when the outage began and one when it ended, however many callers were refused.
    assert [m.split(" (")[0].split(" after")[0] for m in messages] == [OPENED, CLOSED], messages
    assert all(record.exc_info is None for record in caplog.records if record.name == "settings.postgresql")


def test_a_busy_pool_times_out_without_opening_the_circuit(private_postgres, alias):  # noqa: F811
    connection, circuit = alias(private_postgres.url, DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="0")
    holding, done = threading.Event(), threading.Event()

    def hold():  # the pool's only connection, held by another thread's connection
        connections[ALIAS].ensure_connection()
        holding.set()
        done.wait(30)
        connections[ALIAS].close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        cause = failure(connection)
        assert isinstance(cause, PoolTimeout) and not isinstance(cause, DatabaseUnreachable)
        assert not circuit.open  # the database answered the direct attempt: busy, not gone
    finally:
        done.set()
        holder.join()
