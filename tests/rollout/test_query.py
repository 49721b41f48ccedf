"""rollout.Query: a function adopted from pg_proc and its twin, routed, compared and refused a second run when
the function writes."""

import io

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection

import rollout
from rollout.errors import InvalidQueryParams
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.models import Discrepancy, QueryFlag, RecordedCall
from rollout.registry import REGISTRY
from rollout.shadow.queue import background
from rollout.validation import validate_query
from tests.rollout_helpers import committed, plain_sql, wait_until_heard, wait_until_listener_watches

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_discrepancies")]

SQL = """
CREATE TABLE q_ticket (id bigint PRIMARY KEY, client_id bigint NOT NULL, closed boolean NOT NULL);
INSERT INTO q_ticket VALUES (1, 1, false), (2, 1, true), (3, 1, false), (4, 2, false);
CREATE FUNCTION q_open(p_client bigint, p_closed boolean DEFAULT false) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM q_ticket WHERE client_id = p_client AND closed = p_closed $$;
CREATE FUNCTION q_ids(p_client bigint) RETURNS bigint[] LANGUAGE sql STABLE
    AS $$ SELECT array_agg(id ORDER BY id) FROM q_ticket WHERE client_id = p_client $$;
CREATE FUNCTION q_json(p_client bigint) RETURNS jsonb LANGUAGE sql STABLE
    AS $$ SELECT jsonb_build_object('client', p_client, 'ids', (SELECT jsonb_agg(id ORDER BY id) FROM q_ticket
                                                                  WHERE client_id = p_client)) $$;
CREATE FUNCTION q_setof(p_clients bigint[]) RETURNS SETOF bigint LANGUAGE sql STABLE
    AS $$ SELECT id FROM q_ticket WHERE client_id = ANY(p_clients) $$;
CREATE FUNCTION q_table(p_client bigint) RETURNS TABLE (id bigint, closed boolean) LANGUAGE sql STABLE
    AS $$ SELECT id, closed FROM q_ticket WHERE client_id = p_client $$;
CREATE FUNCTION q_take(p_client bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO q_ticket SELECT max(id) + 1, p_client, false FROM q_ticket;
    RETURN (SELECT count(*) FROM q_ticket WHERE client_id = p_client);
END $$;
"""
DROP = "DROP TABLE q_ticket CASCADE; " + "".join(
    f"DROP FUNCTION {f};" for f in ("q_open", "q_ids", "q_json", "q_setof", "q_table", "q_take")
)


def _execute(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)


def _rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def open_count(p_client, p_closed=False):
    return _rows("SELECT count(*) FROM q_ticket WHERE client_id = %s AND closed = %s", [p_client, p_closed])[0][0]


def ids(p_client):
    return [i for (i,) in _rows("SELECT id FROM q_ticket WHERE client_id = %s ORDER BY id", [p_client])] or None


def as_json(p_client):
    return {"client": p_client, "ids": ids(p_client)}


def setof(p_clients):
    return [i for (i,) in _rows("SELECT id FROM q_ticket WHERE client_id = ANY(%s)", [p_clients])]


def table(p_client):
    return [
        {"id": i, "closed": c} for i, c in _rows("SELECT id, closed FROM q_ticket WHERE client_id = %s", [p_client])
    ]


def take(p_client):
    return _rows("SELECT count(*) FROM q_ticket WHERE client_id = %s", [p_client])[0][0]


QUERIES = {
    "q_open": open_count,
    "q_ids": ids,
    "q_json": as_json,
    "q_setof": setof,
    "q_table": table,
    "q_take": take,
}


@pytest.fixture
def adopted():
    committed(_execute, SQL)
    for name, twin in QUERIES.items():
        rollout.register(rollout.Query(name=name, candidate=twin, ordered=name == "q_ids"))
    committed(writes.ensure_flags)
    flags.invalidate()
    yield
    background.drain()
    for name in QUERIES:
        REGISTRY.unregister(name)
    committed(lambda: QueryFlag.objects.filter(name__in=[f"orm.{n}" for n in QUERIES]).delete())
    committed(_execute, DROP)


@pytest.mark.parametrize(
    ("query", "params", "answer"),
    [
        ("q_open", {"p_client": 1}, 2),
        ("q_open", {"p_client": 1, "p_closed": True}, 1),
        ("q_ids", {"p_client": 1}, [1, 2, 3]),
        ("q_json", {"p_client": 2}, {"client": 2, "ids": [4]}),
        ("q_setof", {"p_clients": [1, 2]}, [1, 2, 3, 4]),
        ("q_table", {"p_client": 2}, [{"id": 4, "closed": False}]),
    ],
)
def test_each_return_shape_is_served_by_both_sides_alike(adopted, query, params, answer):
    experiment = REGISTRY.get(query)
    cleaned = experiment.clean(params)
    control, candidate = experiment.run("function", cleaned), experiment.run("twin", cleaned)
    assert sorted(control) == sorted(answer) if query == "q_setof" else control == answer
    assert experiment.compare(control, candidate).equal
    assert rollout.dispatch(query, **params) == control  # through the router: the function serves


def test_parameters_come_from_pg_proc_and_bad_ones_are_named(adopted):
    experiment = REGISTRY.get("q_open")
    assert experiment.clean({"p_client": "7"}, parse=True) == {"p_client": 7}  # p_closed: the function's default
    with pytest.raises(InvalidQueryParams, match="'p_client': missing"):
        experiment.clean({})
    with pytest.raises(InvalidQueryParams, match="'p_clients': expected a list"):
        REGISTRY.get("q_setof").clean({"p_clients": 1})
    assert validate_query("q_table", [{"p_client": 1}, {"p_client": 2}]).equal == 2


def test_a_wrong_twin_is_recorded_in_shadow(adopted):
    rollout.register(rollout.Query(name="q_open", candidate=lambda p_client, p_closed=False: 99))
    writes.set_shadow("q_open", 100)
    flags.invalidate()
    assert rollout.dispatch("q_open", p_client=1) == 2
    background.drain()
    assert committed(lambda: list(Discrepancy.objects.filter(query="q_open").values_list("kind", flat=True))) == [
        "mismatch"
    ]


def test_validation_cases_default_to_the_calls_shadow_mode_compared(adopted):
    writes.set_shadow("q_open", 100)
    flags.invalidate()
    for client in (2, 1, 2):
        rollout.dispatch("q_open", p_client=client)
    background.drain()
    experiment = REGISTRY.get("q_open")
    # Distinct (three calls, two parameter sets); in the order published, which two judging threads may swap.
    assert sorted(committed(experiment.cases), key=lambda p: p["p_client"]) == [{"p_client": 1}, {"p_client": 2}]
    assert committed(lambda: validate_query("q_open", experiment.cases()).equal) == 2
    out = io.StringIO()
    committed(call_command, "rollout", "validate", "q_open", stdout=out)
    assert out.getvalue().strip() == "q_open: 2 cases, 2 equal, 0 different"
    committed(lambda: RecordedCall.objects.filter(query="q_open").delete())


def test_the_system_check_names_a_twin_that_cannot_take_the_arguments_and_a_missing_function(adopted):
    rollout.register(rollout.Query(name="q_open", candidate=lambda client: 0))
    rollout.register(rollout.Query(name="q_gone", candidate=lambda: 0))
    try:
        found = {(m.id, m.obj): m.msg for m in checks.run_checks() if m.id.startswith("rollout.")}
    finally:
        REGISTRY.unregister("q_gone")
    assert (
        "the twin cannot take the function's arguments (p_client bigint, p_closed boolean DEFAULT false)"
        in (found[("rollout.E001", "q_open")])
    )
    assert "no function q_gone" in found[("rollout.W003", "q_gone")]
    assert "INSERT" in found[("rollout.W004", "q_take")]


def _tickets():
    return committed(lambda: _rows("SELECT count(*) FROM q_ticket")[0][0])


def test_a_function_that_inserts_is_refused_shadow_and_rescue_and_never_runs_twice(adopted):
    with pytest.raises(writes.WritingFunction, match="q_take: shadow refused: q_take\\(bigint\\) is VOLATILE and its"):
        writes.set_shadow("q_take", 100)
    with pytest.raises(writes.WritingFunction, match="q_take: rescue refused"):
        writes.set_rescue("q_take", True)
    # Even a row set behind the writes module's back (an old flag, a hand edit) never runs it twice.
    committed(lambda: QueryFlag.objects.filter(name="orm.q_take").update(shadow_percent=100))
    flags.invalidate()
    before = _tickets()
    rollout.dispatch("q_take", p_client=1)
    background.drain()
    assert _tickets() == before + 1
    # The host's word that it only reads lifts the refusal.
    rollout.register(rollout.Query(name="q_take", candidate=take, read_only=True))
    assert writes.set_shadow("q_take", 100).shadow_percent == 100


def _watched(table):
    committed(emit_post_migrate_signal, 0, False, "default")  # what every migrate ends with: the triggers
    wait_until_listener_watches(table)


def test_a_query_that_names_the_tables_it_reads_is_served_from_the_never_stale_cache(adopted):
    rollout.register(rollout.Query(name="q_open", candidate=open_count, reads=("q_ticket",)))
    rollout.register(rollout.Query(name="q_setof", candidate=setof, reads=["q_ticket"]))
    _watched("q_ticket")
    experiment = REGISTRY.get("q_open")
    assert experiment.uncached is None
    params = experiment.clean({"p_client": 1})
    assert experiment.run_cached("twin", params) == (2, False)
    assert experiment.run_cached("twin", params) == (2, "memory")
    assert experiment.cached_answer("twin", params, "redis") == (True, 2)
    assert experiment.run_cached("function", params) == (2, False)  # each side keeps its own answers
    with pytest.raises(InvalidQueryParams, match="'nope' is not one of function, twin"):
        experiment.run_cached("nope", params)
    plain_sql("UPDATE q_ticket SET closed = false WHERE id = 2")  # outside Django: the trigger hears it
    wait_until_heard("q_ticket")
    assert experiment.run_cached("twin", params) == (3, False)
    many = REGISTRY.get("q_setof")
    clients = many.clean({"p_clients": [1, 2]})  # an array argument: a list, kept under a tuple
    assert many.run_cached("twin", clients)[1] is False
    assert sorted(many.run_cached("twin", clients)[0]) == [1, 2, 3, 4]
    writes.enable(["q_open"])
    flags.invalidate()
    assert [rollout.dispatch("q_open", p_client=2) for _ in range(2)] == [1, 1]
    assert rollout.last_decision().cache_hit is True  # the twin serving, through the cache


CLOCK = """CREATE FUNCTION q_today(p_client bigint) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM q_ticket WHERE client_id = p_client AND current_date > DATE '2000-01-01' $$"""


def test_caching_is_refused_to_a_function_whose_answer_reads_the_clock(adopted):
    committed(_execute, CLOCK)
    rollout.register(rollout.Query(name="q_today", candidate=lambda p_client: 0, reads=("q_ticket",)))
    try:
        _watched("q_ticket")
        experiment = REGISTRY.get("q_today")
        assert experiment.uncached == "q_today(bigint) reads current_date"
        assert experiment.run_cached("twin", {"p_client": 1}) == (0, False)
        assert experiment.run_cached("twin", {"p_client": 1}) == (0, False)
        found = {(m.id, m.obj): m.msg for m in checks.run_checks() if m.id.startswith("rollout.")}
        assert "caching is refused: q_today(bigint) reads current_date" in found[("rollout.E001", "q_today")]
    finally:
        REGISTRY.unregister("q_today")
        committed(_execute, "DROP FUNCTION q_today(bigint)")
