"""The fault matrix of docs/reliability.md: each fault, the behaviour it must get, proven here."""

import contextlib
import io
import threading
from datetime import UTC, datetime

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection, transaction
from django.db.utils import OperationalError
from django.test import Client

import rollout
from query_backends.errors import (
    DatabaseUnavailable,
    LegacyFunctionMissing,
    QueryTimeout,
    translated_database_errors,
)
from query_backends.functions import FUNCTIONS, LegacyFunction
from query_backends.registry import REGISTRY
from rollout import operations
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy
from rollout.routing.actors import Actor
from rollout.shadow.queue import background
from tests.rollout_helpers import committed

pytestmark = pytest.mark.django_db
ALICE = Actor(person=1, client=1, site=1)
DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.05, "SOCKET_TIMEOUT": 0.05, "IGNORE_EXCEPTIONS": True},
    }
}


def expected(query, **params):
    definition = REGISTRY.get(query)
    return definition.run("pg", definition.clean(params))


def test_redis_unreachable_then_lost_then_back(settings):
    """Answers stay right (cache bypassed, flags from the database), nothing raises, metrics keep counting."""
    live = settings.CACHES
    writes.change_cohort("bu_list", "person", add=[1])  # ALICE
    settings.CACHES = DEAD_REDIS
    flags.invalidate()
    assert rollout.dispatch("bu_list", actor=ALICE, bu_id=1) == expected("bu_list", bu_id=1)
    assert rollout.last_decision().rule == "cohorts"  # the flag came from the database
    assert metrics.snapshot()[("bu_list", "orm")]["calls"] == 1  # metrics live in PostgreSQL
    settings.CACHES = live
    flags.invalidate()
    rollout.dispatch("bu_list", actor=ALICE, bu_id=1)
    assert metrics.snapshot()[("bu_list", "orm")]["calls"] == 2


def drop(name):
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION {FUNCTIONS[name].signature}")


def reinstall(name):
    with connection.cursor() as cursor:
        cursor.execute(FUNCTIONS[name].source)


@pytest.mark.usefixtures("no_discrepancies")
def test_a_dropped_legacy_function_is_named_and_the_twin_keeps_serving():
    committed(drop, "fn_get_web_caps")
    try:
        with (
            pytest.raises(LegacyFunctionMissing, match=r"fn_get_web_caps.*install_legacy_functions"),
            transaction.atomic(),
        ):
            rollout.dispatch("web_capabilities", root_id=1)
        writes.enable(["web_capabilities"])
        writes.set_shadow("web_capabilities", 100)
        flags.invalidate()
        answer = rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        assert answer and rollout.last_decision().backend == "orm"
        background.drain()
        kinds = list(Discrepancy.objects.values_list("kind", flat=True))
    finally:
        committed(reinstall, "fn_get_web_caps")
    assert kinds == ["control_error"]


def test_a_query_past_statement_timeout_is_a_clear_error_and_the_connection_serves_again():
    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION fn_slow(s float) RETURNS text LANGUAGE sql AS $$ SELECT pg_sleep(s)::text $$")
        cursor.execute("SET LOCAL statement_timeout = 100")
    slow = LegacyFunction("fn_slow", ("float",), returns_rows=False)
    with pytest.raises(QueryTimeout, match="statement_timeout"), transaction.atomic():
        slow(5)
    assert rollout.dispatch("bu_list", actor=ALICE, bu_id=1) == expected("bu_list", bu_id=1)


def test_a_backend_killed_mid_request_fails_cleanly_and_the_next_request_succeeds():
    outcome = {}
    started = threading.Event()

    def request():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            outcome["pid"] = cursor.fetchone()[0]
        started.set()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(3)")
        except OperationalError as exc:
            outcome["error"] = exc
        close_old_connections()  # what Django does at the end of every request
        outcome["next"] = rollout.dispatch("bu_list", bu_id=1)
        close_old_connections()

    thread = threading.Thread(target=request)
    thread.start()
    started.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [outcome["pid"]])
    thread.join(20)
    assert "error" in outcome and outcome["next"] == expected("bu_list", bu_id=1)


def test_a_flag_deleted_while_serving_leaves_the_control_serving():
    writes.enable(["bu_list"])
    flags.invalidate()
    rollout.dispatch("bu_list", actor=ALICE, bu_id=1)
    assert rollout.last_decision().backend == "orm"
    operations.flags_for(["bu_list"])[0].delete()
    flags.invalidate()
    assert rollout.dispatch("bu_list", actor=ALICE, bu_id=1) == expected("bu_list", bu_id=1)
    assert rollout.last_decision().rule == "missing_flag"


def in_a_thread(function):
    """Run on a connection of the pool (not the test's), returned to the pool afterwards."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except Exception as exc:  # noqa: BLE001 — the test inspects whatever happened
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return outcome


def killed_mid_call(backend, already_noticed=False, in_transaction=False):
    """(answer, error) of a registered query whose connection is terminated before it runs (and, if
    already_noticed, after a first statement met the termination: the connection is then just closed)."""
    definition = REGISTRY.get("bu_list")
    params = definition.clean({"bu_id": 1})

    def call():
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.fetchone()[0]
            committed(lambda: connection.cursor().execute("SELECT pg_terminate_backend(%s)", [pid]))
            if already_noticed:
                with contextlib.suppress(OperationalError), connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            return definition.run(backend, params)

    outcome = in_a_thread(call)
    return outcome.get("value"), outcome.get("error")


@pytest.mark.parametrize("already_noticed", [False, True])
@pytest.mark.parametrize("backend", ["pg", "orm"])
def test_a_lost_connection_is_database_unavailable_from_either_backend(backend, already_noticed):
    """Inside the caller's transaction: no retry, the error says what happened."""
    _, error = killed_mid_call(backend, already_noticed, in_transaction=True)
    assert isinstance(error, DatabaseUnavailable) and error.kind == "infrastructure", repr(error)
    assert error.connection_lost


@pytest.mark.parametrize("already_noticed", [False, True])
@pytest.mark.parametrize("backend", ["pg", "orm"])
def test_a_read_whose_connection_was_lost_is_answered_by_one_retry(backend, already_noticed):
    answer, error = killed_mid_call(backend, already_noticed)
    assert error is None and answer == expected("bu_list", bu_id=1)


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "57P01", "57P03", "08006"])
def test_serialization_deadlock_and_shutdown_are_database_unavailable(sqlstate):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION fn_fail(state text) RETURNS text LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'failing' USING ERRCODE = state; END $$"
        )
    failing = LegacyFunction("fn_fail", ("text",), returns_rows=False)
    with pytest.raises(DatabaseUnavailable, match="unavailable") as raised, transaction.atomic():
        failing(sqlstate)
    assert raised.value.__cause__.__cause__.sqlstate == sqlstate
    assert raised.value.connection_lost == (sqlstate in {"57P01", "08006"})


def test_a_statement_timeout_stays_a_timeout_not_unavailable():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 50")
    with (
        pytest.raises(QueryTimeout) as raised,
        transaction.atomic(),
        translated_database_errors(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_sleep(2)")
    assert not isinstance(raised.value, DatabaseUnavailable)


def test_after_the_pool_connections_are_terminated_the_next_call_gets_a_working_one():
    barrier = threading.Barrier(4)

    def hold_a_connection():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        barrier.wait(10)
        connection.close()

    threads = [threading.Thread(target=hold_a_connection) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    with connection.cursor() as cursor:  # every idle pooled connection of this database, not the test's own
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 4

    def plain_statement():  # no retry helps here: only the pool's check can hand out a working connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 42")
            return cursor.fetchone()[0]

    assert in_a_thread(plain_statement) == {"value": 42}
    assert in_a_thread(lambda: Client().get("/api/queries/bu_list?bu_id=1").status_code) == {"value": 401}
    assert in_a_thread(lambda: rollout.dispatch("bu_list", bu_id=1)) == {"value": expected("bu_list", bu_id=1)}


def test_install_legacy_functions_restores_a_dropped_function_and_rollout_functions_names_it():
    drop("fn_getassetvsquestionset")
    with connection.cursor() as cursor:  # and one installed with other arguments
        cursor.execute(f"DROP FUNCTION {FUNCTIONS['fn_get_web_caps'].signature}")
        cursor.execute("CREATE FUNCTION fn_get_web_caps(p_root integer) RETURNS SETOF int LANGUAGE sql AS 'SELECT 1'")
    with pytest.raises(CommandError) as failed:
        call_command("rollout", "functions", "--check")
    assert "query asset_questionsets: no function fn_getassetvsquestionset(bigint, text, text)" in str(failed.value)
    assert "fn_get_web_caps(bigint) in the database (alias 'default'); installed with another signature: " in (
        str(failed.value)
    )
    assert "fn_get_web_caps(integer)" in str(failed.value) and "fn_getjobneed" not in str(failed.value)
    warnings = {w.obj: w.id for w in checks.run_checks() if w.id == "query_backends.W001"}
    assert warnings == {"fn_getassetvsquestionset": "query_backends.W001", "fn_get_web_caps": "query_backends.W001"}
    with (
        pytest.raises(LegacyFunctionMissing, match=r"fn_getassetvsquestionset .*install_legacy_functions"),
        transaction.atomic(),
    ):
        rollout.dispatch("asset_details", mdtz=datetime(2000, 1, 1, tzinfo=UTC), site_id=1)
    out = io.StringIO()
    call_command("install_legacy_functions", stdout=out)
    assert "fn_getassetvsquestionset, fn_get_web_caps" in out.getvalue()
    call_command("rollout", "functions", "--check", stdout=io.StringIO())
    call_command("install_legacy_functions", stdout=out)  # idempotent
    assert "nothing was missing" in out.getvalue()
    assert rollout.dispatch("web_capabilities", root_id=1) == REGISTRY.get("web_capabilities").run(
        "orm", {"root_id": 1}
    )
