"""The shadow queue: Jobs leave the request path here, to be judged and published on Celery workers or threads.

The request path only ever does a `put_nowait` into a bounded in-process queue
(full → the job is dropped and counted as a drop). Behind it:

- with a broker (SHADOW_BACKEND "celery"), one publisher thread sends each job
  in batches (up to SHADOW_BATCH per `rollout.judge` task). It never waits on the broker for long: a short
  connection timeout and no publish retries, and while the broker's queue holds
  SHADOW_BROKER_MAX_QUEUE messages or more (checked at most once a second)
  jobs are dropped and counted instead of piling up in the broker's memory;
- without one (SHADOW_BACKEND "thread"), SHADOW_WORKERS threads judge and
  publish the jobs themselves.

At shutdown (atexit, and SIGTERM when nothing else handles it) the queue is
drained for at most SHADOW_DRAIN_SECONDS; whatever is left is counted as drops.
"""

import atexit
import logging
import os
import queue
import signal
import threading
import time
from collections import Counter

from django.db import close_old_connections, connection

from rollout.conf import get_setting
from rollout.metrics.rollups import metrics
from rollout.outage import Outage

logger = logging.getLogger(__name__)


class Background:
    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._started_with = None
        self._judging = Counter()  # (query, backend) -> jobs being judged now
        self._publishing = 0
        self._closing = False
        self._queue = None
        self._threads = []
        self._depth = (0.0, 0)  # (checked at, broker queue depth)
        self.broker = Outage("the shadow broker", logger)

    @property
    def mode(self):
        return get_setting("SHADOW_BACKEND")

    def _config(self):
        return self.mode, get_setting("SHADOW_WORKERS"), get_setting("SHADOW_QUEUE_SIZE")

    def _running(self):
        return (
            self._pid == os.getpid()
            and self._started_with == self._config()
            and all(t.is_alive() for t in self._threads)
        )

    def _ensure_started(self):
        if self._running():
            return
        with self._lock:
            if self._running():
                return
            self._pid, self._started_with = os.getpid(), self._config()
            self._queue = queue.Queue(maxsize=get_setting("SHADOW_QUEUE_SIZE"))
            count = 1 if self.mode == "celery" else get_setting("SHADOW_WORKERS")
            work = self._publish_jobs if self.mode == "celery" else self._run_jobs
            self._threads = [
                threading.Thread(target=work, args=(self._queue,), name=f"rollout-background-{i}", daemon=True)
                for i in range(count)
            ]
            for thread in self._threads:
                thread.start()

    def submit(self, job):
        """Queue a Job; False (and a counted drop) when the queue is full. Never blocks."""
        self._ensure_started()
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            metrics.increment(job.query, job.candidate_backend, "drops")
            return False

    @staticmethod
    def _take_batch(jobs, linger=0.0, idle=None):
        """The next job (waiting for it, at most `idle` seconds: [] then) and what else comes within `linger`
        seconds, up to SHADOW_BATCH jobs."""
        try:
            batch = [jobs.get(timeout=idle)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + linger
        while len(batch) < get_setting("SHADOW_BATCH"):
            try:
                batch.append(jobs.get(timeout=max(0.0, deadline - time.monotonic())) if linger else jobs.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run_jobs(self, jobs):
        # Imported here: the request path, which imports this module, never loads the worker's side.
        from rollout.shadow.judge import judge_all
        from rollout.shadow.publish import publish

        while True:
            batch = self._take_batch(jobs)
            keys = _keys(batch)
            with self._lock:
                self._judging.update(keys)
            try:
                results = judge_all(batch)
                with self._lock:
                    self._judging.subtract(keys)
                    if self._closing:  # shutdown has counted these jobs as dropped
                        continue
                    self._publishing += 1
                try:
                    try:
                        publish(results)
                    except Exception as exc:  # noqa: BLE001 — once more on a fresh connection (a lost one, say)
                        logger.warning("could not publish %d results (%s); retrying once", len(results), exc)
                        connection.close()
                        publish(results)
                finally:
                    with self._lock:
                        self._publishing -= 1
            except Exception:
                logger.exception("could not publish %d results", len(batch))
                for (query, backend), n in keys.items():
                    metrics.increment(query, backend, "record_failures", n)
            finally:
                close_old_connections()
                for _ in batch:
                    jobs.task_done()

    def _publish_jobs(self, jobs):
        from rollout.shadow import ledger
        from rollout.shadow.tasks import judge

        while True:
            # Publishing costs the web process CPU (and the GIL): a few publishes a second, not one per sample.
            # Waking when idle too: a batch the broker lost is counted even when no sample follows it.
            idle = get_setting("SHADOW_LEDGER_SECONDS") / 10
            batch = self._take_batch(jobs, linger=get_setting("SHADOW_PUBLISH_LINGER_SECONDS"), idle=idle)
            try:
                if batch:
                    self._publish(judge, ledger, batch, _keys(batch))
            finally:
                for _ in batch:
                    jobs.task_done()
            ledger.maybe_reconcile()

    def _publish(self, judge, ledger, batch, keys):
        """Send one batch, written down in the ledger first; whatever fails, its jobs are counted once."""
        try:
            full = self._broker_full()
        except Exception as exc:  # noqa: BLE001 — a broker outage drops samples, never the caller
            self.broker.failed(exc)
            full = True
        if full:
            self._count_drops(batch)
            return
        try:
            sent = ledger.open_batch(keys)
        except Exception as exc:  # noqa: BLE001 — what could not be written down is not sent: dropped, counted
            logger.warning("could not write a shadow batch down (%s); %d jobs counted as drops", exc, len(batch))
            self._count_drops(batch)
            return
        try:
            judge.apply_async(args=[[job.to_wire() for job in batch]], kwargs={"batch": sent}, retry=False)
            self.broker.succeeded()
        except Exception as exc:  # noqa: BLE001 — a broker outage drops samples, never the caller
            self.broker.failed(exc)
            try:
                ledger.cancel(sent, keys)
            except Exception:  # noqa: BLE001 — the row stays: the ledger counts the batch as dropped later
                logger.warning("could not cancel shadow batch %s; the ledger will count it as dropped", sent)

    @staticmethod
    def _count_drops(batch):
        for (query, backend), n in _keys(batch).items():
            metrics.increment(query, backend, "drops", n)

    def _broker_full(self):
        checked_at, depth = self._depth
        if time.monotonic() - checked_at >= 1.0:
            depth = broker_depth()
            self._depth = (time.monotonic(), depth)
        return depth >= get_setting("SHADOW_BROKER_MAX_QUEUE")

    def _drop_the_rest(self):
        """Count every job not yet published as dropped — those queued and those still being judged (which
        will not publish now) — then give those already writing their result a moment to finish."""
        with self._lock:
            self._closing = True
            dropped = Counter({key: n for key, n in self._judging.items() if n})
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            dropped[(job.query, job.candidate_backend)] += 1
        for (query, backend), n in dropped.items():
            metrics.increment(query, backend, "drops", n)
        logger.warning("shutting down with %d background jobs unfinished; counted as drops", sum(dropped.values()))
        deadline = time.monotonic() + 5
        while self._publishing and time.monotonic() < deadline:
            time.sleep(0.01)

    def drain(self, timeout=None):
        """Wait until every queued job is done (or published); returns how many were left when time ran out."""
        if self._queue is None or self._pid != os.getpid():
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._queue.all_tasks_done.wait(left)
        return self._queue.unfinished_tasks

    def shutdown(self):
        """Drain for at most SHADOW_DRAIN_SECONDS; count what is left as drops. Once: a server's own hook and
        atexit both call it (through rollout.shutdown), and what the first counted as dropped stays counted once."""
        if self._queue is None or self._pid != os.getpid() or self._closing:
            return
        if self.drain(get_setting("SHADOW_DRAIN_SECONDS")):
            self._drop_the_rest()


def _keys(batch):
    """How many jobs of the batch each (query, candidate backend) has: the keys its counts go under."""
    return Counter((job.query, job.candidate_backend) for job in batch)


class _BrokerDepth:
    """Messages waiting in the shadow queue of the broker (0 when it does not exist yet).

    One connection per process, kept between checks: a new one each second cost the web process a connect and
    kombu's transport lookup every time. A failed check closes it; the next one connects again."""

    def __init__(self):
        self._lock = threading.Lock()
        self._connection = None
        self._pid = None

    def __call__(self):
        from celery import current_app

        name = current_app.conf.task_default_queue
        with self._lock:
            if self._connection is None or self._pid != os.getpid():
                self._connection, self._pid = current_app.connection_for_write(), os.getpid()
            try:
                return self._connection.default_channel.queue_declare(queue=name, passive=True).message_count
            except Exception as exc:
                # A passive declare of a queue not yet declared closes its channel (AMQP 404): start afresh.
                self._close()
                if "NOT_FOUND" in str(exc) or "404" in str(exc):
                    return 0
                raise

    def _close(self):
        connection, self._connection = self._connection, None
        try:
            connection.release()
        except Exception:  # noqa: BLE001 — a broken connection may fail to close; it is dropped either way
            pass


broker_depth = _BrokerDepth()


background = Background()


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds to atexit, which drains


def install_shutdown_hooks():
    """rollout.shutdown at exit: a process's queued comparisons drained and its counts written, a short one's too
    (a cron job's calls are the application's own, which retirement's check tells from calls from outside).
    SIGTERM made an orderly exit where nothing else (gunicorn, Celery) has claimed it."""
    import rollout

    atexit.register(rollout.shutdown)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
