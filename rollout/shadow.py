"""Shadow mode: compare control and candidate off the request path, in one snapshot.

A sampled call returns at once; its comparison waits in a bounded queue for
one of SHADOW_WORKERS threads (full queue → the sample is dropped and counted).
A worker runs both backends in one REPEATABLE READ transaction on its own
connection, so they read the same rows and clock, and also checks the served
answer against a fresh answer of the same backend: if those differ the data
moved underneath, which is noise, not a discrepancy (Diffy's second control).
"""

import logging
import os
import queue
import threading

from django.db import close_old_connections, transaction

from rollout.conf import get_setting
from rollout.experiments import registry
from rollout.metrics import metrics
from rollout.observation import Observation
from rollout.recorder import Record, recorder

logger = logging.getLogger(__name__)
TIMEOUT_KINDS = {"timeout"}


def _isolated(experiment, backend, params):
    """One backend inside a savepoint, so its failure leaves the snapshot usable."""
    with transaction.atomic():
        return experiment.run(backend, params)


def observe_both(experiment, params):
    """(control, candidate) observations in one snapshot."""
    control, candidate = get_setting("CONTROL_BACKEND"), get_setting("CANDIDATE_BACKEND")
    with registry().snapshot():
        return (
            Observation.of(control, _isolated, experiment, control, params),
            Observation.of(candidate, _isolated, experiment, candidate, params),
        )


def error_text(observation):
    return f"{type(observation.exception).__name__}: {observation.exception}" if observation.raised else ""


def classify(control, candidate, difference):
    kinds = difference.errors
    if kinds is None:
        return "mismatch"
    if TIMEOUT_KINDS & set(kinds):
        return "timeout"
    if kinds[0] and kinds[1]:
        return "different_errors"
    return "candidate_error" if kinds[1] else "control_error"


def signature(kind, difference):
    """What makes two occurrences the same difference: its shape, not its data."""
    if difference.errors:
        return "errors:" + "/".join(str(k) for k in difference.errors)
    parts = [name for name in ("missing", "extra", "reordered", "value") if getattr(difference, name)]
    fields = sorted({change.field for change in difference.changed})
    return "+".join(parts) + (":" + ",".join(fields) if fields else "")


def bounded_diff(difference, limit=None):
    """The difference as JSON, at most `limit` rows of each list; "cut" counts what was left out."""
    limit = limit or get_setting("SHADOW_DIFF_ROWS")
    full = difference.as_dict()
    cut = {}
    for name in ("missing", "extra", "changed"):
        if len(full[name]) > limit:
            cut[name] = len(full[name]) - limit
            full[name] = full[name][:limit]
    full["cut"] = cut
    return full


def build_record(experiment, decision, params, control, candidate, difference, actor, kind=None):
    kind = kind or classify(control, candidate, difference)
    return Record(
        query=decision.query,
        flag=decision.flag,
        kind=kind,
        signature=signature(kind, difference),
        actor=actor.ids() if actor is not None else {},
        params=params,
        diff=bounded_diff(difference),
        served_backend=decision.backend,
        control_duration=control.duration,
        candidate_duration=candidate.duration,
        control_error=error_text(control),
        candidate_error=error_text(candidate),
    )


def _still_cached(experiment, decision, params, fresh):
    """After the fresh answer, the cache still serves a different one: stale, not noise."""
    found, current = experiment.cached_answer(decision.backend, params)
    return found and not experiment.compare(current, fresh.outcome).equal


def compare(experiment, decision, params, served, actor):
    """The comparison itself (runs on a worker). Returns the Record written, or None."""
    from rollout import guard

    control, candidate = observe_both(experiment, params)
    fresh = control if served.backend == control.backend else candidate
    metrics.increment(decision.query, get_setting("CANDIDATE_BACKEND"), "comparisons")
    moved = experiment.compare(served.outcome, fresh.outcome)
    if not moved.equal:
        if decision.cache_hit and _still_cached(experiment, decision, params, fresh):
            record = build_record(experiment, decision, params, fresh, served, moved, actor, kind="stale_cache")
            metrics.increment(decision.query, get_setting("CANDIDATE_BACKEND"), "discrepancies")
            recorder.submit(record)
            return record
        metrics.increment(decision.query, get_setting("CANDIDATE_BACKEND"), "noise")
        return None
    difference = experiment.compare(control.outcome, candidate.outcome)
    ignored = not difference.equal and experiment.ignored(control.outcome, candidate.outcome, difference)
    if difference.equal or ignored:
        metrics.increment(decision.query, get_setting("CANDIDATE_BACKEND"), "matches")
        guard.observe(decision.flag, discrepancy=False, candidate_error=False, control=control, candidate=candidate)
        return None
    record = build_record(experiment, decision, params, control, candidate, difference, actor)
    metrics.increment(decision.query, get_setting("CANDIDATE_BACKEND"), "discrepancies")
    recorder.submit(record)
    guard.observe(
        decision.flag, discrepancy=True, candidate_error=candidate.raised, control=control, candidate=candidate
    )
    return record


def record_fallback(experiment, decision, params, failed, served, actor):
    """The candidate raised while serving: that is a discrepancy even when nobody sampled the call."""
    from rollout import guard

    difference = experiment.compare(served.outcome, failed.outcome)
    if difference.equal:  # the control failed the same way: the candidate was right to fail
        return
    recorder.submit(build_record(experiment, decision, params, served, failed, difference, actor))
    guard.observe(decision.flag, discrepancy=True, candidate_error=True, control=served, candidate=failed)


class ShadowExecutor:
    """A bounded queue and a few daemon workers per process (re-created after a fork)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._queue = None
        self._workers = []

    def _ensure_started(self):
        with self._lock:
            if self._pid == os.getpid() and all(w.is_alive() for w in self._workers):
                return
            self._pid = os.getpid()
            self._queue = queue.Queue(maxsize=get_setting("SHADOW_QUEUE_SIZE"))
            self._workers = [
                threading.Thread(target=self._work, args=(self._queue,), name=f"rollout-shadow-{i}", daemon=True)
                for i in range(get_setting("SHADOW_WORKERS"))
            ]
            for worker in self._workers:
                worker.start()

    def submit(self, task, query, backend):
        """Queue a comparison; False (and a counted drop) when the queue is full. Never blocks."""
        self._ensure_started()
        try:
            self._queue.put_nowait(task)
            return True
        except queue.Full:
            metrics.increment(query, backend, "drops")
            return False

    @staticmethod
    def _work(tasks):
        while True:
            task = tasks.get()
            try:
                task()
            except Exception:
                logger.exception("shadow comparison failed")
            finally:
                close_old_connections()
                tasks.task_done()

    def drain(self):
        """Block until every queued comparison has run and its record is written (tests, benchmarks)."""
        if self._queue is not None:
            self._queue.join()
        recorder.drain()


executor = ShadowExecutor()


def submit(experiment, decision, params, served, actor):
    return executor.submit(
        lambda: compare(experiment, decision, params, served, actor), decision.query, get_setting("CANDIDATE_BACKEND")
    )
