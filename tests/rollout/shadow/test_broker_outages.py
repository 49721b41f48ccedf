"""A broker outage under load: the Celery worker outlives it, and every sampled call ends compared or dropped.

Redis plays every role here — cache and broker (only REDIS_URL is set, the default
this project documents) — in a private redis-server of this test's own, killed by
its pid (SIGKILL: what it held in memory is gone) while a web process samples
every call from four threads, and started again on the same port.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from rollout.models import QueryFlag, SentBatch
from rollout.shadow.ledger import reconcile
from tests.rollout_helpers import ROOT, committed, database_url, free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WEB = """
import django, sys, threading, time
django.setup()
import rollout
from rollout.routing.actors import Actor

calls, lock, stop = [0], threading.Lock(), time.monotonic() + float(sys.argv[1])

def client(person):
    n = 0
    while time.monotonic() < stop:
        rollout.dispatch("toy", actor=Actor(person=person), n=n % 50)
        n += 1
        time.sleep(0.002)
    with lock:
        calls[0] += n

threads = [threading.Thread(target=client, args=(p,)) for p in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(calls[0], flush=True)
sys.stdin.read()  # stays up (its publisher reconciling the ledger) until the test closes stdin
"""


def redis_on(port):
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the private redis-server did not start")


def totals():
    """{counter: total} of the toy over both sides, as every process wrote them."""
    from rollout.metrics.rollups import metrics

    numbers = committed(metrics.snapshot)
    counts = {}
    for side in ("old", "new"):
        for name, n in numbers.get(("toy", side), {}).items():
            if isinstance(n, int):
                counts[name] = counts.get(name, 0) + n
    return counts


def start(args, env, **kwargs):
    environ = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "settings", **env}
    environ.pop("CELERY_BROKER_URL", None)
    return subprocess.Popen(args, cwd=ROOT, env=environ, start_new_session=True, **kwargs)


@pytest.fixture
def toy_flag():
    committed(lambda: QueryFlag.objects.create(name="orm.toy", shadow_percent=100))  # the control serves
    yield
    committed(lambda: QueryFlag.objects.filter(name="orm.toy").delete())


def test_redis_killed_under_load_the_worker_survives_and_every_sample_is_compared_or_dropped(toy_flag, tmp_path):
    port = free_port()
    redis = redis_on(port)
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",  # the cache and, with no CELERY_BROKER_URL, the broker
        "ROLLOUT_SHADOW_BACKEND": "celery",
        "ROLLOUT_CELERY_QUEUE": f"rollout-test-{uuid.uuid4().hex[:8]}",
        "ROLLOUT_REGISTRY": "tests.toy.REGISTRY",
        "TOY_DELAY_SECONDS": "0.002",
        "ROLLOUT_SHADOW_BATCH": "20",
        "ROLLOUT_SHADOW_LEDGER_SECONDS": "20",
        "CELERY_VISIBILITY_TIMEOUT": "5",
        "CELERY_UNACKED_RESTORE_INTERVAL": "0.2",
    }
    log = (tmp_path / "worker.log").open("ab")
    worker = start(
        [sys.executable, "-m", "celery", "-A", "settings", "worker", "-c", "2", "-n", f"t-{uuid.uuid4().hex[:8]}@%h"]
        + ["--without-gossip", "--without-mingle", "-l", "warning"],
        env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    web = start([sys.executable, "-c", WEB, "14"], env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: totals().get("comparisons", 0) > 0, 60), "no comparison before the outage"
        redis.kill()  # SIGKILL, by its pid: an outage, and every message it held is lost
        redis.wait()
        time.sleep(4)
        assert worker.poll() is None
        redis = redis_on(port)
        compared_at_restart = totals().get("comparisons", 0)
        calls = int(web.stdout.readline())
        # Every batch the broker lost is reconciled by the web's publisher within the ledger's 20 s.
        assert wait_for(lambda: committed(SentBatch.objects.count) == 0, 90)
        web.stdin.close()
        web.send_signal(signal.SIGTERM)  # drains and flushes its metrics
        web.wait(30)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        numbers = totals()
    finally:
        for process in (web, worker):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        redis.kill()
        redis.wait()
        log.close()
    assert numbers["comparisons"] > compared_at_restart  # the worker consumed again after Redis came back
    assert numbers["calls"] == calls
    assert numbers["comparisons"] + numbers.get("drops", 0) == calls, numbers


def test_a_batch_the_broker_never_delivered_is_counted_as_dropped_once():
    from datetime import timedelta

    from django.utils import timezone

    from rollout.metrics.rollups import metrics
    from rollout.shadow import ledger

    lost = ledger.open_batch({("toy", "new"): 7})
    delivered = ledger.open_batch({("toy", "new"): 3})
    assert ledger.settle(delivered) and not ledger.settle(delivered)  # a redelivery publishes nothing
    before = metrics.snapshot().get(("toy", "new"), {}).get("drops", 0)
    assert reconcile(timezone.now() + timedelta(seconds=1)) == 7
    assert reconcile(timezone.now() + timedelta(seconds=1)) == 0
    assert metrics.snapshot()[("toy", "new")]["drops"] == before + 7
    assert not ledger.pending(lost) and not ledger.settle(lost)  # delivered late: counted already, not published
