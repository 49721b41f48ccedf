"""Any table can be read by a cached answer: migrate puts the trigger on it, a check says when it is missing,
and what reads a table without one is never cached."""

from types import SimpleNamespace

import psycopg
import pytest
from django.core.management.sql import emit_post_migrate_signal

from rollout import cache
from rollout.cache import checks, triggers
from tests.rollout_helpers import committed, database_url, plain_sql, wait_until_heard, wait_until_listener_watches

pytestmark = pytest.mark.django_db
TICKETS = SimpleNamespace(name="open_tickets", reads=("host_ticket",), cache="always")


def open_tickets():
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT title FROM host_ticket WHERE open ORDER BY id")]


def watched():
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return {row[0] for row in conn.execute(triggers._WATCHED)}


@pytest.fixture
def host_table(settings):
    """A table of the host's own (no Django model), declared as read by cached answers."""
    plain_sql("CREATE TABLE host_ticket (id serial PRIMARY KEY, title text NOT NULL, open boolean NOT NULL)")
    plain_sql("INSERT INTO host_ticket (title, open) VALUES ('printer', true), ('coffee', false)")
    settings.ROLLOUT_CACHE_READS = (*settings.ROLLOUT_CACHE_READS, "host_ticket")
    yield "host_ticket"
    plain_sql("DROP TABLE host_ticket")


def test_migrate_watches_a_host_table_and_a_plain_sql_write_retires_its_answers(host_table):
    assert host_table not in watched()
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer"], False)
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer"], False)  # unwatched: never kept
    committed(emit_post_migrate_signal, 0, False, "default")  # what every migrate ends with
    assert host_table in watched()
    wait_until_listener_watches(host_table)
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer"], False)
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer"], "memory")
    plain_sql("UPDATE host_ticket SET open = true WHERE title = 'coffee'")
    wait_until_heard(host_table)
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer", "coffee"], False)


def test_a_table_dropped_and_created_again_never_serves_the_answers_of_the_old_one(host_table):
    committed(emit_post_migrate_signal, 0, False, "default")
    wait_until_listener_watches(host_table)
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer"], False)
    assert cache.cached(TICKETS, {}, open_tickets) == (["printer"], "memory")
    plain_sql("DROP TABLE host_ticket")  # fires no trigger
    plain_sql("CREATE TABLE host_ticket (id serial PRIMARY KEY, title text NOT NULL, open boolean NOT NULL)")
    plain_sql("INSERT INTO host_ticket (title, open) VALUES ('scanner', true)")  # before its trigger is back
    committed(emit_post_migrate_signal, 0, False, "default")
    # A later commit elsewhere: once it is heard, the listener's generations are from after the migrate.
    plain_sql("UPDATE job SET jobname = jobname WHERE id = -1")
    wait_until_heard("job")
    assert cache.cached(TICKETS, {}, open_tickets) == (["scanner"], False)


def test_the_check_names_a_declared_table_without_its_trigger(host_table, settings):
    settings.ROLLOUT_CACHE_READS = (*settings.ROLLOUT_CACHE_READS, "no_such_table")
    found = {warning.obj: warning for warning in checks.triggers_installed()}
    assert set(found) == {"host_ticket", "no_such_table"}
    assert found["host_ticket"].id == "rollout.W002" and "ROLLOUT_CACHE_READS" in found["host_ticket"].msg
    committed(emit_post_migrate_signal, 0, False, "default")
    assert [warning.obj for warning in checks.triggers_installed()] == ["no_such_table"]  # it does not exist


def test_every_table_a_registered_query_reads_is_watched():
    assert checks.triggers_installed() == []
    assert {"bt", "capability", "questionset"} <= watched()


def test_a_disabled_trigger_unwatches_its_table_and_migrate_restores_it():
    try:
        plain_sql("ALTER TABLE capability DISABLE TRIGGER query_cache_bump")  # writes would go unheard
        assert "capability" not in watched()
        [warning] = checks.triggers_installed()
        assert warning.obj == "capability" and "web_capabilities" in warning.msg
        committed(emit_post_migrate_signal, 0, False, "default")
        assert "capability" in watched() and checks.triggers_installed() == []
    finally:
        plain_sql("ALTER TABLE capability ENABLE ALWAYS TRIGGER query_cache_bump")
