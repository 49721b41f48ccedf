import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal

import django
import pytest
from django.db import DataError, OperationalError, connections, transaction
from django.db.models import ExpressionWrapper, F, Func, IntegerField, TextField, Value
from django.db.transaction import TransactionManagementError

import rollout
from query_backends.checks import compiled_twins_supported
from query_backends.models import Asset, BusinessUnit, Capability, JobNeed, People
from query_backends.registry import REGISTRY
from query_backends.twins import compiled
from query_backends.twins.compiled import _UNCOMPILABLE, CompiledQuery
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy
from rollout.routing.actors import Actor
from rollout.shadow.queue import background
from tests.rollout_helpers import committed, reset_flags

pytestmark = pytest.mark.django_db
ALICE = Actor(person=1)


def plain(queryset, columns):
    return [dict(zip(columns, row)) for row in queryset.values_list(*columns)]


def test_a_shape_compiles_once_and_later_values_answer_like_the_queryset():
    def build(site, since, ids):
        return Asset.objects.filter(bu_id=site, mdtz__gte=since, id__in=ids).order_by("id")

    query = CompiledQuery(build)
    columns = ("id", "assetcode", "capacity", "uuid", "mdtz")
    sites = list(BusinessUnit.objects.filter(id__gt=0).values_list("id", flat=True)[:6])
    since = datetime(2000, 1, 1, tzinfo=UTC)
    for site in sites:
        ids = list(Asset.objects.filter(bu_id=site).values_list("id", flat=True)[:3])
        ids += [0] * (3 - len(ids))
        assert query.rows(columns, site=site, since=since, ids=ids) == plain(build(site, since, ids), columns)
    assert len(query._plans) == 1 and next(iter(query._plans.values())) is not _UNCOMPILABLE


def test_what_cannot_be_mapped_safely_runs_the_queryset():
    unused = CompiledQuery(lambda site, ignored: JobNeed.objects.filter(bu_id=site).order_by("id")[:5])
    assert unused.rows(("id",), site=1, ignored=7) == plain(JobNeed.objects.filter(bu_id=1).order_by("id")[:5], ("id",))
    assert list(unused._plans.values()) == [_UNCOMPILABLE]
    empty = CompiledQuery(lambda ids: JobNeed.objects.filter(id__in=ids))
    assert empty.rows(("id",), ids=[]) == []
    assert list(empty._plans.values()) == [_UNCOMPILABLE]


def test_booleans_and_list_lengths_are_part_of_the_shape():
    shape = CompiledQuery.shape
    assert shape(("id",), {"a": 1, "b": True}) != shape(("id",), {"a": 1, "b": False})
    assert shape(("id",), {"ids": [1, 2]}) != shape(("id",), {"ids": [1, 2, 3]})
    assert shape(("id",), {"a": 1}) == shape(("id",), {"a": 2})


def test_the_plans_are_bounded():
    query = CompiledQuery(lambda ids: Asset.objects.filter(id__in=ids).order_by("id"))
    for length in range(1, compiled.PLANS_PER_QUERY + 11):
        ids = list(range(1, length + 1))
        assert query.rows(("id",), ids=ids) == plain(Asset.objects.filter(id__in=ids).order_by("id"), ("id",))
    assert len(query._plans) == compiled.PLANS_PER_QUERY


def test_another_django_version_warns_and_the_twins_run_plain_querysets(monkeypatch):
    assert compiled_twins_supported() == []
    monkeypatch.setattr(django, "VERSION", (9, 9, 0, "final", 0))
    assert [warning.id for warning in compiled_twins_supported()] == ["query_backends.W002"]
    monkeypatch.setattr(compiled, "COMPILING", False)
    query = CompiledQuery(lambda site: People.objects.filter(bu_id=site).order_by("id"))
    columns = ("id", "people_extras")
    assert query.rows(columns, site=1) == plain(People.objects.filter(bu_id=1).order_by("id"), columns)
    assert len(query._plans) == 0


def test_threads_share_the_plans_and_each_answers_on_its_own_connection():
    """A JSON column (a converter that takes the connection) read by six threads at once, each on its own
    connection, through plans another thread compiled; every row as the QuerySet returns it."""

    def build(site, ids):
        return People.objects.filter(bu_id=site, id__in=ids).order_by("id")

    columns = ("id", "peoplecode", "people_extras", "mdtz")
    cases = []
    for site in BusinessUnit.objects.filter(id__gt=0).values_list("id", flat=True)[:8]:
        ids = list(People.objects.filter(bu_id=site).values_list("id", flat=True)[:3])
        cases.append((site, ids + [0] * (3 - len(ids))))
    expected = [plain(build(site, ids), columns) for site, ids in cases]
    assert any(expected)
    query = CompiledQuery(build)
    barrier = threading.Barrier(6)
    failures, backends = [], set()

    def worker(offset):
        try:
            barrier.wait()
            for i in range(60):
                index = (i + offset) % len(cases)
                site, ids = cases[index]
                assert query.rows(columns, site=site, ids=ids) == expected[index], (site, ids)
            backends.add(connections["default"].connection.info.backend_pid)
        except BaseException as exc:  # noqa: BLE001 — reported by the test thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(backends) > 1 and len(query._plans) == 1


@pytest.mark.usefixtures("no_discrepancies")
def test_adispatch_and_shadow_worker_threads_run_the_compiled_twins_side_by_side(settings):
    settings.ROLLOUT_CACHE_CANDIDATE = False  # every call runs the twin itself
    queries = {
        "web_capabilities": [
            {"root_id": r} for r in Capability.objects.filter(id__gt=0).values_list("id", flat=True)[:10]
        ],
        "bu_list": [
            {"bu_id": b, "fmt": "array"}
            for b in BusinessUnit.objects.filter(id__gt=0).values_list("id", flat=True)[:10]
        ],
    }
    committed(writes.enable, list(queries))
    for name in queries:
        committed(writes.set_shadow, name, 100)
    flags.invalidate()
    calls = [(name, params) for name, many in queries.items() for params in many] * 3

    async def everything():
        return await asyncio.gather(*(rollout.adispatch(name, actor=ALICE, **params) for name, params in calls))

    try:
        answers = asyncio.run(everything())
        background.drain()
    finally:
        committed(reset_flags)
    for (name, params), answer in zip(calls, answers):
        definition = REGISTRY.get(name)
        assert definition.compare(definition.run("pg", definition.clean(params)), answer).equal, (name, params)
    assert not Discrepancy.objects.exists()
    numbers = metrics.snapshot()
    assert sum(numbers[(name, "orm")]["comparisons"] for name in queries) == len(calls)


def test_a_plan_keeps_djangos_rules_off_its_cursor():
    """The plan runs on the psycopg connection itself, yet a broken atomic block refuses it, and a failure
    comes out as Django's error with the connection marked for Django's end-of-request check."""
    query = CompiledQuery(lambda site: People.objects.filter(bu_id=site).order_by("id"))
    query.rows(("id",), site=1)
    connection = connections["default"]
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            query.rows(("id",), site=1)
    slow = CompiledQuery(
        lambda seconds: People.objects.annotate(
            pause=Func(Value(seconds), function="pg_sleep", output_field=TextField())
        )
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 20")
        connection.errors_occurred = False
        with pytest.raises(OperationalError) as raised, transaction.atomic():
            slow.rows(("id", "pause"), seconds=0.5)
        assert raised.value.__cause__.sqlstate == "57014"
        assert connection.errors_occurred


def test_whoever_watches_the_statements_sees_each_plan_run():
    query = CompiledQuery(lambda site: People.objects.filter(bu_id=site).order_by("id"))
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    unwatched = query.rows(("id",), site=1)
    with connections["default"].execute_wrapper(spy):
        assert query.rows(("id",), site=1) == unwatched
    assert seen == [next(iter(query._plans.values())).sql]


def test_an_int_cast_of_an_integer_column_is_dropped_after_the_first_call_and_of_a_numeric_one_kept():
    def build(site):
        return (
            People.objects.filter(bu_id=site)
            .annotate(
                doubled=ExpressionWrapper(F("id") * 2, output_field=IntegerField()),
                halved=ExpressionWrapper(F("id") / Value(Decimal(2)), output_field=IntegerField()),
            )
            .order_by("id")
        )

    query = CompiledQuery(build)
    columns = ("id", "doubled", "halved")
    sites = list(People.objects.filter(bu_id__gt=0).values_list("bu_id", flat=True).distinct()[:3])
    assert sites
    for site in sites:
        answer = query.rows(columns, site=site)
        assert answer == plain(build(site), columns)
        assert all(type(row["halved"]) is int and type(row["doubled"]) is int for row in answer)
    [plan] = query._plans.values()
    assert plan.typed and [position for position, _, _ in plan.converters] == [2]


def test_one_cursor_serves_small_answers_and_none_is_kept_after_a_big_one_or_a_failure(monkeypatch):
    monkeypatch.setattr(compiled, "KEPT_CURSOR_ROWS", 2)
    connection = connections["default"]
    query = CompiledQuery(lambda top: People.objects.filter(id__gt=0, id__lte=top).order_by("id"))
    first, second, third = People.objects.filter(id__gt=0).order_by("id").values_list("id", flat=True)[:3]
    assert query.rows(("id",), top=first) == [{"id": first}]
    kept = compiled._CURSORS[connection]
    assert query.rows(("id",), top=second) == [{"id": first}, {"id": second}]
    assert compiled._CURSORS[connection] is kept
    assert query.rows(("id",), top=third) == [{"id": first}, {"id": second}, {"id": third}]
    assert connection not in compiled._CURSORS and kept.closed  # its big raw result freed
    query.rows(("id",), top=first)
    kept = compiled._CURSORS[connection]
    with pytest.raises(DataError), transaction.atomic():
        query.rows(("id",), top="not a number")  # the statement fails in PostgreSQL
    assert connection not in compiled._CURSORS and kept.closed
    assert query.rows(("id",), top=first) == [{"id": first}]
