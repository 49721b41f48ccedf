"""The safety net under faults: a guard that blames only the candidate, fallback without Redis, nothing lost.

Real PostgreSQL, a private redis-server started and killed here, real Celery
worker processes on Redis and on RabbitMQ, and real process signals.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

import rollout
from query_backends.errors import LegacyFunctionMissing
from query_backends.functions import FUNCTIONS
from query_backends.registry import REGISTRY
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, GuardSample, QueryFlag
from rollout.routing.actors import Actor
from rollout.shadow.queue import background
from tests.rollout_helpers import ROOT, committed, database_url, free_port, replace_definition, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]
ALICE = Actor(person=1, client=10, site=100)


def tight_guard(query, **fields):
    """A flag whose guard trips on the first discrepancy or candidate error after 5 judged comparisons."""
    flag = QueryFlag.objects.get(name=f"orm.{query}")
    values = {
        "guard_window": 10,
        "guard_min_sample": 5,
        "guard_max_discrepancy_rate": 0.01,
        "guard_max_error_rate": 0.01,
        "guard_max_latency_ratio": None,
        **fields,
    }
    for field, value in values.items():
        setattr(flag, field, value)
    flag.save()
    flags.invalidate()
    return flag


def drop_function(name):
    committed(lambda: connection.cursor().execute(f"DROP FUNCTION {FUNCTIONS[name].signature}"))


def reinstall_function(name):
    committed(lambda: connection.cursor().execute(FUNCTIONS[name].source))


def judged_samples(query):
    return committed(lambda: GuardSample.objects.filter(flag=f"orm.{query}").count())


def kinds(query):
    return committed(lambda: dict(Discrepancy.objects.filter(query=query).values_list("kind", "occurrences")))


def test_a_dropped_function_while_the_twin_serves_is_a_legacy_incident_not_the_twins_fault():
    tight_guard("web_capabilities", everyone=True, shadow_percent=100)
    expected = rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    background.drain()
    drop_function("fn_get_web_caps")
    try:
        answers = [rollout.dispatch("web_capabilities", actor=ALICE, root_id=1) for _ in range(20)]
        background.drain()
    finally:
        reinstall_function("fn_get_web_caps")
    assert answers == [expected] * 20 and rollout.last_decision().backend == "orm"
    flag = QueryFlag.objects.get(name="orm.web_capabilities")
    assert flag.guard_tripped_at is None and flag.everyone is True  # the guard stayed armed
    assert kinds("web_capabilities") == {"control_error": 20}  # recorded and shown
    assert judged_samples("web_capabilities") == 1  # only the comparison before the drop
    assert metrics.snapshot()[("web_capabilities", "orm")]["control_errors"] == 20


def test_a_dropped_function_while_the_control_serves_is_a_clean_503_and_the_guard_stays_armed(admin_client):
    tight_guard("web_capabilities", shadow_percent=100)
    drop_function("fn_get_web_caps")
    try:
        responses = [admin_client.get("/api/queries/web_capabilities?root_id=1") for _ in range(6)]
        with pytest.raises(LegacyFunctionMissing):
            rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        background.drain()
    finally:
        reinstall_function("fn_get_web_caps")
    assert {r.status_code for r in responses} == {503}
    assert all("fn_get_web_caps" in r.json()["error"] for r in responses)
    assert QueryFlag.objects.get(name="orm.web_capabilities").guard_tripped_at is None
    assert judged_samples("web_capabilities") == 0 and set(kinds("web_capabilities")) == {"control_error"}


def private_redis():
    """A redis-server of this test's own on a free port (a fixed one could be another test run's)."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if process.poll() is not None:  # it could not bind: whatever answers on that port is not ours
            raise RuntimeError(f"the private redis-server could not start on port {port}")
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return port, process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the private redis-server did not start")


def test_redis_killed_while_the_twin_raises_every_caller_gets_the_functions_answer(settings, monkeypatch, caplog):
    port, redis = private_redis()
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25, "IGNORE_EXCEPTIONS": True},
        }
    }
    definition = REGISTRY.get("bu_list")
    replace_definition(monkeypatch, "bu_list", twin=lambda *args, **kwargs: 1 / 0)
    writes.enable(["bu_list"])
    flags.invalidate()
    try:
        assert rollout.dispatch("bu_list", actor=ALICE, bu_id=2) == definition.run("pg", definition.clean({"bu_id": 2}))
        redis.kill()  # SIGKILL: an outage, not a shutdown
        redis.wait()
        answers = {bu: rollout.dispatch("bu_list", actor=ALICE, bu_id=bu, fmt="array") for bu in range(1, 21)}
        assert answers == {bu: definition.run("pg", definition.clean({"bu_id": bu, "fmt": "array"})) for bu in answers}
        assert rollout.last_decision().fell_back
        background.drain()
        assert kinds("bu_list") == {"candidate_error": 21}  # the fallbacks are recorded without Redis
        call_command("rollout", "clear-guard", "bu_list")  # every command works with Redis down
        call_command("rollout", "status")
    finally:
        redis.kill()
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("django_redis")]
    assert len(tracebacks) == 0


def killing_its_own_connection(times):
    """A twin that terminates its own database connection the first `times` times it runs."""
    calls = []
    original = REGISTRY.get("bu_list").twin

    def twin(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return original(*args, **kwargs)

    return twin


@pytest.mark.parametrize("kills,expected", [(1, "matches"), (1000, "infrastructure")])
def test_a_connection_terminated_during_a_comparison_is_retried_once_and_never_a_discrepancy(
    monkeypatch, kills, expected
):
    replace_definition(monkeypatch, "bu_list", twin=killing_its_own_connection(kills))
    tight_guard("bu_list", shadow_percent=100)
    for bu in (1, 2, 3):
        rollout.dispatch("bu_list", actor=ALICE, bu_id=bu)  # the function serves; the twin only compares
    background.drain()
    numbers = metrics.snapshot()[("bu_list", "orm")]
    assert numbers[expected] == 3 and numbers["discrepancies"] == 0
    assert kinds("bu_list") == {}  # never recorded
    assert judged_samples("bu_list") == (3 if expected == "matches" else 0)  # never fed to the guard


def test_the_candidate_rescues_a_failing_control_only_when_opted_in_and_seen_healthy(monkeypatch):
    tight_guard("web_capabilities", shadow_percent=100, rescue=True, rescue_after=5)
    healthy = REGISTRY.get("web_capabilities")
    expected = rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    background.drain()

    def missing(*args):
        raise LegacyFunctionMissing("the legacy function fn_get_web_caps is not installed")

    replace_definition(monkeypatch, "web_capabilities", function=missing)
    with pytest.raises(LegacyFunctionMissing):  # seen healthy once, not five times: no rescue
        rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    monkeypatch.setitem(REGISTRY._definitions, "web_capabilities", healthy)
    for _ in range(5):
        rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    background.drain()
    replace_definition(monkeypatch, "web_capabilities", function=missing)
    rescued = rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    decision = rollout.last_decision()
    background.drain()
    QueryFlag.objects.filter(name="orm.web_capabilities").update(rescue=False)
    with pytest.raises(LegacyFunctionMissing):  # opted out: the caller gets the control's error
        rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
    assert rescued == expected and decision.rescued and decision.backend == "orm"
    assert kinds("web_capabilities")["rescued"] == 1
    assert metrics.snapshot()[("web_capabilities", "orm")]["rescues"] == 1
    assert QueryFlag.objects.get(name="orm.web_capabilities").guard_tripped_at is None


def start(code_or_args, env, module=False, output=subprocess.PIPE):
    environ = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "settings", **env}
    args = [sys.executable, "-m", *code_or_args] if module else [sys.executable, "-c", code_or_args]
    return subprocess.Popen(
        args, cwd=ROOT, env=environ, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )


def toy_flag():
    def create():
        QueryFlag.objects.filter(name="orm.toy").delete()
        QueryFlag.objects.create(name="orm.toy", shadow_percent=100)

    committed(create)


def toy_records():
    return committed(lambda: Discrepancy.objects.filter(query="toy").values_list("kind", "occurrences").first())


WEB = """
import django, os
django.setup()
import rollout
from rollout.routing.actors import Actor
for n in range({calls}):
    rollout.dispatch("toy", actor=Actor(person=1), n=n)
print("dispatched", flush=True)
"""


def worker(env, log):
    # A node name of its own: two workers of one name on one broker fight over their control queue.
    name = f"rollout-test-{uuid.uuid4().hex[:8]}@%h"
    args = [
        "celery",
        "-A",
        "settings",
        "worker",
        "-c",
        "2",
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "-l",
        "warning",
    ]
    return start(args, env, module=True, output=log.open("ab"))


@pytest.fixture
def broker(request):
    """A private redis-server of the test's own, or the machine's RabbitMQ (each test on a queue of its own)."""
    if request.param == "redis":
        port, process = private_redis()
        yield f"redis://127.0.0.1:{port}/0"
        process.kill()
        process.wait()
    else:
        yield "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)
def test_comparisons_run_on_celery_workers_and_a_killed_worker_loses_nothing(broker, tmp_path):
    calls = 60
    env = {
        "CELERY_BROKER_URL": broker,
        "ROLLOUT_SHADOW_BACKEND": "celery",
        "ROLLOUT_CELERY_QUEUE": f"rollout-test-{uuid.uuid4().hex[:8]}",
        "ROLLOUT_REGISTRY": "tests.toy.REGISTRY",
        "TOY_WRONG": ",".join(str(n) for n in range(calls)),  # every comparison mismatches
        "TOY_DELAY_SECONDS": "0.05",
        "CELERY_WORKER_PREFETCH_MULTIPLIER": "4",
        "ROLLOUT_SHADOW_BATCH": "5",  # twelve tasks: the kill lands between and inside them
    }
    toy_flag()
    web = start(WEB.format(calls=calls), env)
    assert web.wait(60) == 0, web.stdout.read().decode()  # the web side published everything and exited
    log = tmp_path / "workers.log"
    first = worker(env, log)
    try:
        assert wait_for(lambda: (toy_records() or ("", 0))[1] >= 10, 120), log.read_text()[-3000:]
        os.killpg(first.pid, signal.SIGKILL)  # mid-batch: tasks in flight and prefetched, unacknowledged
        first.wait()
        if broker.startswith("amqp"):
            second = worker(env, log)
        else:  # Redis redelivers after the visibility timeout; a new worker asks at once
            second = worker({**env, "CELERY_VISIBILITY_TIMEOUT": "1", "CELERY_UNACKED_RESTORE_INTERVAL": "0.2"}, log)
        try:
            assert wait_for(lambda: (toy_records() or ("", 0))[1] >= calls, 180), (
                toy_records(),
                log.read_text()[-3000:],
            )
            time.sleep(1.5)  # a double count would show up now
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert toy_records() == ("mismatch", calls)  # every mismatch recorded exactly once
    committed(lambda: QueryFlag.objects.filter(name="orm.toy").delete())


def test_sigterm_drains_the_in_process_queue_or_counts_what_it_dropped():
    calls = 40
    env = {
        "ROLLOUT_SHADOW_BACKEND": "thread",
        "ROLLOUT_SHADOW_WORKERS": "1",
        "ROLLOUT_SHADOW_QUEUE_SIZE": "100",
        "ROLLOUT_SHADOW_DRAIN_SECONDS": "0.5",
        "ROLLOUT_REGISTRY": "tests.toy.REGISTRY",
        "TOY_WRONG": ",".join(str(n) for n in range(calls)),
        "TOY_DELAY_SECONDS": "0.05",
    }
    toy_flag()
    web = start(WEB.format(calls=calls) + "import time\ntime.sleep(60)\n", env)
    assert web.stdout.readline().strip() == b"dispatched"
    web.send_signal(signal.SIGTERM)
    assert web.wait(30) != 0
    recorded = (toy_records() or ("", 0))[1]
    drops = metrics.snapshot().get(("toy", "new"), {}).get("drops", 0)
    assert 0 < recorded < calls and recorded + drops == calls  # nothing vanished uncounted
    committed(lambda: QueryFlag.objects.filter(name="orm.toy").delete())


REPLICA = """
import django
django.setup()
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rollout.shadow.judge import both_sides
from rollout.experiments import get_experiment

experiment = get_experiment("bu_list")
with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(connections["replica"]) as replica:
    control, candidate = both_sides(experiment, experiment.clean({"bu_id": 2}))
print(control.value == candidate.value and not control.raised)
print(sum("fn_get_bulist" in q["sql"] for q in replica.captured_queries), len(primary.captured_queries))
"""


def test_comparisons_read_from_the_database_alias_the_setting_names():
    process = start(REPLICA, {"DATABASE_REPLICA_URL": database_url(), "ROLLOUT_SHADOW_DATABASE": "replica"})
    out, _ = process.communicate(timeout=60)
    agree, counts = out.decode().strip().splitlines()[-2:]
    function_calls, primary_queries = map(int, counts.split())
    assert agree == "True" and function_calls == 1 and primary_queries == 0


def test_dispatch_many_takes_the_same_path_shadow_per_value_and_fallback_recorded(monkeypatch):
    people = [1, 2, 3, 4]
    tight_guard("job_needs", everyone=True, shadow_percent=100)
    answers = rollout.dispatch_many("job_needs", actor=ALICE, vary="people_id", values=people, bu_id=1, client_id=1)
    background.drain()
    numbers = metrics.snapshot()[("job_needs", "orm")]
    assert set(answers) == set(people) and numbers["comparisons"] == len(people) and numbers["calls"] == 1

    def broken_batch(values, **params):
        raise RuntimeError("batch twin bug")

    definition = REGISTRY.get("job_needs")
    replace_definition(monkeypatch, "job_needs", batch=("people_id", broken_batch))
    again = rollout.dispatch_many("job_needs", actor=ALICE, vary="people_id", values=people, bu_id=1, client_id=1)
    assert rollout.last_decision().fell_back
    assert again == {
        p: definition.run("pg", definition.clean({"people_id": p, "bu_id": 1, "client_id": 1})) for p in people
    }
    background.drain()
    assert kinds("job_needs") == {"candidate_error": 1}
    assert metrics.snapshot()[("job_needs", "orm")]["fallbacks"] == 1


BROKER_DOWN = """
import django, time
django.setup()
import rollout
from rollout.routing.actors import Actor
started = time.perf_counter()
answers = [rollout.dispatch("toy", actor=Actor(person=1), n=n) for n in range(20)]
print("answers", answers == [n * 2 for n in range(20)], flush=True)
"""


def test_with_the_broker_down_callers_get_their_answers_and_samples_are_counted_as_drops():
    toy_flag()
    env = {
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "ROLLOUT_SHADOW_BACKEND": "celery",
        "ROLLOUT_REGISTRY": "tests.toy.REGISTRY",
    }
    web = start(BROKER_DOWN, env)
    out, _ = web.communicate(timeout=120)
    text = out.decode()
    assert web.returncode == 0 and "answers True" in text, text
    assert text.count("the shadow broker unreachable") == 1, text  # one warning, not one per sample
    assert metrics.snapshot()[("toy", "new")]["drops"] == 20
    committed(lambda: QueryFlag.objects.filter(name="orm.toy").delete())


def test_a_publish_that_loses_its_connection_is_retried_and_nothing_is_lost(monkeypatch):
    from django.db import OperationalError

    from rollout.shadow import recorder

    claim, failures = recorder.claim, []

    def loses_its_connection_once(ids):
        if not failures:
            failures.append(1)
            raise OperationalError("the connection is lost")
        return claim(ids)

    monkeypatch.setattr(recorder, "claim", loses_its_connection_once)
    replace_definition(monkeypatch, "bu_list", twin=lambda *args, **kwargs: "wrong")
    tight_guard("bu_list", shadow_percent=100)
    for bu in (1, 2, 3):
        rollout.dispatch("bu_list", actor=ALICE, bu_id=bu)
    background.drain()
    assert failures == [1] and kinds("bu_list") == {"mismatch": 3}
    numbers = metrics.snapshot()[("bu_list", "orm")]
    assert numbers["discrepancies"] == 3 and numbers["record_failures"] == 0
