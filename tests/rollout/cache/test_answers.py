import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest
import time_machine

import rollout
from query_backends import models as m
from query_backends.registry import REGISTRY
from rollout.cache import generations
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy
from rollout.routing.actors import Actor
from rollout.shadow.queue import background
from settings.environment import cache_config
from tests.conftest import rolled_back
from tests.legacy_world import bu, capability, person
from tests.rollout_helpers import (
    committed,
    committed_generation,
    database_url,
    free_port,
    plain_sql,
    private_redis_server,
    python_process,
    wait_until_heard,
)

pytestmark = pytest.mark.django_db
ALICE = Actor(person=1)


def caps(root_id):
    definition = REGISTRY.get("web_capabilities")
    return definition.run_cached("orm", definition.clean({"root_id": root_id}))


def fresh_caps(root_id):
    return REGISTRY.get("web_capabilities").run("pg", {"root_id": root_id})


@pytest.fixture
def menu():
    """A committed WEB capability with one child; both gone afterwards."""

    def create():
        root = capability(cfor="WEB")
        capability(root)
        return root.id

    root_id = committed(create)
    wait_until_heard("capability")  # else the first entry is stored under generations from before it
    yield root_id
    plain_sql("DELETE FROM capability WHERE parent_id = %s", [root_id])
    plain_sql("DELETE FROM capability WHERE id = %s", [root_id])


def test_a_hit_comes_from_memory_then_from_redis_in_a_process_that_has_not_seen_it(menu):
    first = caps(menu)
    assert first == (fresh_caps(menu), False)
    assert caps(menu) == (first[0], "memory")
    generations.listener.memory.clear()  # as if another process asked
    assert caps(menu) == (first[0], "redis")
    assert caps(menu) == (first[0], "memory")


def test_a_cached_answer_is_read_only_and_a_hit_hands_out_the_same_one(menu):
    answer, _ = caps(menu)
    with pytest.raises(TypeError, match="read-only"):
        answer[0]["capscode"] = "MUTATED"
    with pytest.raises(TypeError, match="read-only"):
        answer.clear()
    again, hit = caps(menu)
    assert hit == "memory" and again is answer and again == fresh_caps(menu)
    mine = [dict(row, capscode="MINE") for row in again]  # a caller changes a copy
    assert mine != again and caps(menu) == (fresh_caps(menu), "memory")


@pytest.fixture
def shared_cache(settings, tmp_path):
    """The Redis this process and another share: REDIS_URL's, else (the embedded default keeps its cache in
    process) a redis-server of this test's own, stopped by its pid."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with private_redis_server(tmp_path) as (_, port):
        url = f"redis://127.0.0.1:{port}/0"
        settings.CACHES = {"default": cache_config({"REDIS_URL": url})}
        yield url


def test_a_plain_sql_write_is_seen_by_the_next_call_in_another_process(menu, shared_cache):
    caps(menu)  # cached here, and in Redis for the other process
    other = python_process(
        "from query_backends.registry import REGISTRY\n"
        "from rollout.cache import generations\n"
        "d = REGISTRY.get('web_capabilities')\n"
        f"p = d.clean({{'root_id': {menu}}})\n"
        "print(repr(d.run_cached('orm', p)[1]), flush=True)\n"
        "target = int(sys.stdin.readline())\n"
        "while (generations.listener.generations() or {}).get('capability', 0) < target:\n"
        "    time.sleep(0.002)\n"
        "value, hit = d.run_cached('orm', p)\n"
        "print(repr(hit), flush=True)\n"
        "print(sorted(row['capscode'] for row in value), flush=True)\n",
        REDIS_URL=shared_cache,
    )
    try:
        assert other.stdout.readline().strip() == "'redis'"
        plain_sql("UPDATE capability SET capscode = 'WRITTEN-ELSEWHERE' WHERE parent_id = %s", [menu])
        other.stdin.write(f"{committed_generation('capability')}\n")
        other.stdin.flush()
        out, err = other.communicate(timeout=60)
    finally:
        other.kill()
    hit, codes = out.strip().splitlines()
    assert hit == "False", err
    assert "WRITTEN-ELSEWHERE" in codes
    wait_until_heard("capability")
    assert caps(menu) == (fresh_caps(menu), "redis")  # the other process stored the fresh answer


def test_a_write_in_an_open_transaction_is_not_seen_until_it_commits(menu):
    before, _ = caps(menu)
    writer = psycopg.connect(database_url())
    try:
        writer.execute("UPDATE capability SET capscode = 'UNCOMMITTED' WHERE parent_id = %s", [menu])
        # A later commit elsewhere: once it is heard, everything committed before it has been heard too.
        plain_sql("UPDATE job SET jobname = jobname WHERE id = -1")
        wait_until_heard("job")
        assert fresh_caps(menu) == before
        assert caps(menu) == (before, "memory")
        writer.commit()
        wait_until_heard("capability")
        after, hit = caps(menu)
        assert not hit and after != before and after == fresh_caps(menu)
    finally:
        writer.close()


def test_inside_a_transaction_that_has_written_the_database_answers(menu):
    cached, _ = caps(menu)
    with rolled_back():  # rolled back to its savepoint: the fixture's clean-up does not wait on our row locks
        m.Capability.objects.filter(parent_id=menu).update(capscode="MINE")  # uncommitted
        mine, hit = caps(menu)
        assert hit is False and mine == fresh_caps(menu) and mine != cached
        # Other connections are still served the committed answer: nothing of ours was stored.
        assert committed(caps, menu) == (cached, "memory")


def test_a_killed_listener_connection_bypasses_nothing_stale_and_recovers(menu):
    first, _ = caps(menu)
    old_pid = generations.listener.backend_pid
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        # Committed while the listener is (about to be) gone: its NOTIFY reaches no one.
        conn.execute("UPDATE capability SET capscode = 'DURING-OUTAGE' WHERE parent_id = %s", [menu])
    deadline = time.monotonic() + 30
    while generations.listener.backend_pid in (None, old_pid) or generations.listener.generations() is None:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.005)
    after, hit = caps(menu)
    assert hit is False and after == fresh_caps(menu) and after != first
    assert caps(menu) == (after, "memory")


def test_while_the_listener_is_down_every_call_computes_and_nothing_is_stored(menu, monkeypatch):
    caps(menu)
    down = generations.GenerationListener()
    # Nothing listens on a free port: the listener cannot connect.
    unused = free_port()
    monkeypatch.setattr(
        generations, "listener_params", lambda: {"host": "127.0.0.1", "port": unused, "connect_timeout": 1}
    )
    monkeypatch.setattr(generations, "listener", down)
    try:
        assert down.generations() is None
        plain_sql("UPDATE capability SET capscode = 'UNHEARD' WHERE parent_id = %s", [menu])
        expected = fresh_caps(menu)
        assert caps(menu) == (expected, False)
        assert caps(menu) == (expected, False)
        assert REGISTRY.get("web_capabilities").cached_answer("orm", {"root_id": menu}) == (False, None)
    finally:
        down.stop()


def test_a_listener_silent_past_three_heartbeats_bypasses_the_cache(menu, monkeypatch, settings):
    """A black-holed listener: its connection neither fails nor hears; the generations it last read go stale."""
    settings.ROLLOUT_CACHE_LISTENER_HEARTBEAT_SECONDS = 0.1
    silent = generations.GenerationListener()
    monkeypatch.setattr(generations, "listener", silent)
    release = threading.Event()
    try:
        first, _ = caps(menu)
        assert caps(menu) == (first, "memory")
        silent._refresh = lambda conn: release.wait()  # from now on no heartbeat and no notification gets through
        plain_sql("UPDATE capability SET capscode = 'UNHEARD' WHERE parent_id = %s", [menu])
        time.sleep(0.5)  # past 3 heartbeats
        after, hit = caps(menu)
        assert hit is False and after == fresh_caps(menu) and after != first
    finally:
        release.set()
        silent.stop()


def test_an_answer_kept_for_other_tables_is_not_served_to_a_declaration_of_more(menu):
    """Two declarations of one name: what the first kept was checked against its tables, not the second's."""
    fewer = SimpleNamespace(name="menu", reads=("bt",), cache="always")
    more = SimpleNamespace(name="menu", reads=("bt", "capability"), cache="always")
    before, _ = rollout.cache.cached(fewer, {"root_id": menu}, lambda: fresh_caps(menu))
    assert rollout.cache.cached(fewer, {"root_id": menu}, lambda: fresh_caps(menu)) == (before, "memory")
    plain_sql("UPDATE capability SET capscode = 'WRITTEN' WHERE parent_id = %s", [menu])
    wait_until_heard("capability")
    after, hit = rollout.cache.cached(more, {"root_id": menu}, lambda: fresh_caps(menu))
    assert hit is False and after == fresh_caps(menu) and after != before
    assert rollout.cache.cached(more, {"root_id": menu}, lambda: fresh_caps(menu)) == (after, "memory")


@pytest.fixture
def private_redis(tmp_path):
    with private_redis_server(tmp_path) as server:
        yield server


def test_a_redis_stall_during_a_write_never_serves_the_old_answer(menu, settings, private_redis):
    server, port = private_redis
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1, "IGNORE_EXCEPTIONS": True},
        }
    }
    first, _ = caps(menu)
    assert caps(menu) == (first, "memory")
    os.kill(server.pid, signal.SIGSTOP)
    plain_sql("UPDATE capability SET capscode = 'DURING-STALL' WHERE parent_id = %s", [menu])
    wait_until_heard("capability")
    during, hit = caps(menu)  # Redis times out: computed
    assert hit is False and during == fresh_caps(menu) and during != first
    assert caps(menu) == (during, "memory")  # the in-process tier carries on
    os.kill(server.pid, signal.SIGCONT)
    generations.listener.memory.clear()  # a process that only has what Redis kept: the entry from before the write
    after, hit = caps(menu)
    assert hit is False and after == during


def test_a_daily_answer_rolls_over_at_utc_midnight():
    definition = REGISTRY.get("sites_list_web")
    params = definition.clean({"client_id": 1, "people_id": 1})
    with time_machine.travel(datetime(2030, 1, 1, 23, 59, 59, tzinfo=UTC), tick=False):
        assert definition.run_cached("orm", params)[1] is False
        assert definition.run_cached("orm", params)[1] == "memory"
    with time_machine.travel(datetime(2030, 1, 2, 0, 0, 1, tzinfo=UTC), tick=False):
        assert definition.run_cached("orm", params)[1] is False


def test_queries_that_read_now_are_never_cached():
    definition = REGISTRY.get("job_needs")
    params = definition.clean({"people_id": 1, "bu_id": 1, "client_id": 1})
    assert definition.run_cached("orm", params)[1] is False
    assert definition.run_cached("orm", params)[1] is False


def test_an_unreachable_redis_makes_the_cache_a_no_op(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.05, "SOCKET_TIMEOUT": 0.05, "IGNORE_EXCEPTIONS": True},
        }
    }
    definition = REGISTRY.get("bu_list")
    params = definition.clean({"bu_id": 1, "fmt": "array"})
    expected = definition.run("pg", params)
    assert definition.run_cached("orm", params) == (expected, False)
    assert definition.run_cached("orm", params) == (expected, "memory")
    generations.listener.memory.clear()
    assert definition.run_cached("orm", params) == (expected, False)


def test_the_router_serves_the_candidate_through_the_cache_and_counts_hits():
    writes.enable(["bu_list"])
    flags.invalidate()
    answers = [rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array") for _ in range(3)]
    assert answers[0] == answers[1] == answers[2] and rollout.last_decision().cache_hit is True
    numbers = metrics.snapshot()[("bu_list", "orm")]
    assert (numbers["cache_misses"], numbers["cache_hits"]) == (1, 2)


@pytest.mark.usefixtures("no_discrepancies")
def test_a_stale_cached_answer_is_caught_as_a_stale_cache_discrepancy():
    writes.enable(["bu_list"])
    writes.set_shadow("bu_list", 100)
    flags.invalidate()
    generations.listener.memory.clear()
    served = rollout.dispatch("bu_list", actor=ALICE, bu_id=2, fmt="array")  # miss: now cached
    # A cache bug, planted: the entry stays current but holds a different answer.
    key = next(key for key in list(generations.listener.memory._entries) if key[0] == "bu_list")
    kept = generations.listener.memory.get(key)
    generations.listener.memory.put(key, kept._replace(answer=[*served, 999_999]))
    rollout.dispatch("bu_list", actor=ALICE, bu_id=2, fmt="array")
    assert rollout.last_decision().cache_hit is True
    background.drain()
    assert list(Discrepancy.objects.values_list("kind", flat=True)) == ["stale_cache"]


def test_job_needs_for_many_people_costs_two_queries(django_assert_num_queries):
    client = bu(kind="CLIENT")
    site = bu(parent=client)
    people = [person(client, site) for _ in range(25)]
    with django_assert_num_queries(2):
        answers = REGISTRY.get("job_needs").run_many(
            "orm", "people_id", [p.id for p in people], {"bu_id": site.id, "client_id": client.id}
        )
    assert set(answers) == {p.id for p in people}


def test_dispatch_many_answers_like_one_call_per_person():
    from query_backends.models import JobNeed

    row = JobNeed.objects.filter(
        people_id__gt=0,
        bu_id__isnull=False,
        identifier="TASK",
        plandatetime__gte=datetime.now(UTC) - timedelta(hours=12),
    ).first()
    people = sorted(
        {row.people_id, *m.People.objects.filter(client_id=row.client_id).values_list("id", flat=True)[:30]}
    )
    writes.enable(["job_needs"])
    flags.invalidate()
    many = rollout.dispatch_many(
        "job_needs", actor=ALICE, vary="people_id", values=people, bu_id=row.bu_id, client_id=row.client_id
    )
    assert rollout.last_decision().backend == "orm"
    definition = REGISTRY.get("job_needs")
    for person_id in people:
        single = definition.run("pg", {"people_id": person_id, "bu_id": row.bu_id, "client_id": row.client_id})
        assert definition.compare(single, many[person_id]).equal, person_id
    assert any(many.values())


def test_the_person_lookup_is_cached_and_retired_by_a_membership_change(django_assert_num_queries):
    from django.contrib.auth.models import User

    from query_backends.actors import resolve_user

    def create():
        client = bu(kind="CLIENT")
        return client.id, person(client, None, loginid="lookup-me").id

    client_id, someone = committed(create)
    wait_until_heard("people")
    user = User(username="lookup-me")
    try:
        first = resolve_user(user)
        assert first["person"] == someone and first["people_group"] == set()
        with django_assert_num_queries(1):  # inside the test's transaction: only the has-it-written check
            assert resolve_user(user) == first
        group = committed(lambda: m.PeopleGroup.objects.create(groupname="G", client_id=client_id).id)
        committed(lambda: m.GroupMembership.objects.create(pgroup_id=group, people_id=someone))
        wait_until_heard("pgbelonging")
        assert resolve_user(user)["people_group"] == {group}
    finally:

        def cleanup():
            m.GroupMembership.objects.filter(people_id=someone).delete()
            m.PeopleGroup.objects.filter(client_id=client_id).delete()
            m.People.objects.filter(id=someone).delete()
            m.BusinessUnit.objects.filter(id=client_id).delete()

        committed(cleanup)


def test_a_write_with_session_replication_role_replica_still_retires_cached_answers(menu):
    """Logical replication's apply and restores run as `replica`: the cache's triggers fire there too."""
    cached, _ = caps(menu)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE capability SET capscode = 'REPLICATED' WHERE parent_id = %s", [menu])
    wait_until_heard("capability")
    answer, hit = caps(menu)
    assert not hit and answer == fresh_caps(menu) and answer != cached
