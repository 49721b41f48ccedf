"""Judging: from a Job to an immutable Result. Runs on a worker, never on the request path.

A shadow comparison runs both sides in one snapshot (`snapshot`): a
REPEATABLE READ transaction on the comparison database (SHADOW_DATABASE), so
both read the same rows and clock, that always rolls back — a function that
writes is never run twice for real — and runs with `jit = off` (a comparison
re-runs short queries; compiling them costs more than it saves). Each side runs
in a savepoint (`observe`), so a failing side leaves the snapshot usable.

The served answer is checked against a fresh answer of the same side: if those
differ the data moved underneath — noise, not a discrepancy (Diffy's second
control) — unless the served answer came from the cache and the cache still
holds it, which is a stale cache. An infrastructure failure on either side
(connection lost, shutdown, serialization failure, timeout) is retried once on
a fresh connection; if it persists the result says so and nothing is blamed.

A fallback (the candidate raised while serving) and a rescue (the control
raised while serving and the candidate answered) are judged from the two
observations the call already made.
"""

import logging
import time
from collections import Counter
from contextlib import contextmanager

from django.db import connections, transaction

from rollout.conf import get_setting
from rollout.experiments import get_experiment, registry
from rollout.flags.cache import flags
from rollout.metrics.rollups import FUNCTION_CALLS, metrics
from rollout.postgres import dependencies
from rollout.shadow import result as kinds
from rollout.shadow.job import FALLBACK, RESCUE, SHADOW, Job, infrastructure
from rollout.shadow.observation import Observation, observe
from rollout.shadow.result import Result

logger = logging.getLogger(__name__)


@contextmanager
def snapshot(using=None):
    """One consistent, never-committed read of the data for both sides (and whatever the registry adds)."""
    using = using or get_setting("SHADOW_DATABASE")
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if outermost:  # inside a caller's transaction the caller owns its isolation
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET LOCAL jit = off")
        with registry().snapshot(using=using):
            yield
        transaction.set_rollback(True, using=using)


def sides(experiment, params, using=None):
    """(control, candidate) Observations of one call, inside an open snapshot."""
    using = using or get_setting("SHADOW_DATABASE")
    # The application's own call of the function (retirement tells it from anyone else's), where PostgreSQL
    # counts it too: a comparison on a read replica is not a call the primary's statistics ever see.
    if dependencies.counted_here(using):
        metrics.increment(experiment.name, experiment.control, FUNCTION_CALLS)
    return tuple(
        observe(backend, experiment.run, backend, params, using=using)
        for backend in (experiment.control, experiment.candidate)
    )


def both_sides(experiment, params):
    """(control, candidate) in one snapshot of their own; an infrastructure failure is retried once."""
    using = get_setting("SHADOW_DATABASE")
    for _attempt in (1, 2):
        try:
            with snapshot(using):
                control, candidate = sides(experiment, params, using)
        except Exception as exc:
            if not experiment.infrastructure_failure(exc):
                raise
            control, candidate = (
                Observation(side, exception=exc) for side in (experiment.control, experiment.candidate)
            )
        if not (infrastructure(experiment, control) or infrastructure(experiment, candidate)):
            return control, candidate
        connections[using].close()  # the retry gets a fresh connection
    return control, candidate


def kind_of(experiment, control, candidate, difference):
    """matched, ignored or the kind of mismatch between two observations, and the reason of an ignored one."""
    if difference.equal:
        return kinds.MATCHED, None
    if control.raised and candidate.raised:
        return kinds.DIFFERENT_ERRORS, None
    if control.raised or candidate.raised:
        return (kinds.CONTROL_ERROR if control.raised else kinds.CANDIDATE_ERROR), None
    reason = experiment.ignored(control.outcome, candidate.outcome, difference)
    return (kinds.IGNORED if reason else kinds.MISMATCH), reason


def _judged(experiment, job, control, candidate, cost=0.0):
    difference = experiment.compare(control.outcome, candidate.outcome)
    kind, reason = kind_of(experiment, control, candidate, difference)
    return _result(job, kind, control, candidate, difference, ignore_reason=reason, cost=cost)


def _result(job, kind, control=None, candidate=None, difference=None, ignore_reason=None, cost=0.0):
    return Result(
        comparison_id=job.id,
        query=job.query,
        flag=job.flag,
        kind=kind,
        served_backend=job.served_backend,
        control=control,
        candidate=candidate,
        difference=difference,
        ignore_reason=ignore_reason,
        params=job.params,
        actor=job.actor,
        candidate_backend=job.candidate_backend,
        cost=cost,
    )


def _still_cached(experiment, backend, params, fresh):
    """After the fresh answer, the cache still serves a different one: stale, not noise."""
    found, current = experiment.cached_answer(backend, params)
    return found and not experiment.compare(current, fresh.outcome).equal


def _shadow(experiment, job):
    state = flags.get(job.flag)
    if state is not None and state.retired:  # the retirement waited for every process: this one knows by now
        return _result(job, kinds.RETIRED)
    params = experiment.clean(job.params, parse=True)
    served = job.served
    if infrastructure(experiment, served):
        return _result(job, kinds.INFRA, candidate=served)
    started = time.perf_counter()
    control, candidate = both_sides(experiment, params)
    cost = time.perf_counter() - started
    if infrastructure(experiment, control) or infrastructure(experiment, candidate):
        return _result(job, kinds.INFRA, control, candidate, cost=cost)
    fresh = control if served.backend == experiment.control else candidate
    if not served.value_omitted:
        moved = experiment.compare(served.outcome, fresh.outcome)
        if not moved.equal:
            if job.cache_hit and _still_cached(experiment, served.backend, params, fresh):
                return _result(job, kinds.STALE_CACHE, fresh, served, moved, cost=cost)
            return _result(job, kinds.NOISE, control, candidate, moved, cost=cost)
    return _judged(experiment, job, control, candidate, cost)


def _fallback(experiment, job):
    if infrastructure(experiment, job.candidate) or infrastructure(experiment, job.control):
        return _result(job, kinds.INFRA, job.control, job.candidate)
    return _judged(experiment, job, job.control, job.candidate)


def _rescue(experiment, job):
    difference = experiment.compare(job.control.outcome, job.candidate.outcome)
    return _result(job, kinds.RESCUED, job.control, job.candidate, difference)


JUDGES = {SHADOW: _shadow, FALLBACK: _fallback, RESCUE: _rescue}


def judge(job):
    """The Result of one Job (or of its wire form)."""
    if not isinstance(job, Job):
        job = Job.from_wire(job)
    return JUDGES[job.source](get_experiment(job.query), job)


def count_failures(jobs):
    """Count jobs whose result could not be judged or published, under their query's candidate."""
    for (query, backend), n in Counter(_key(job) for job in jobs).items():
        metrics.increment(query, backend, "record_failures", n)


def _key(job):
    if isinstance(job, Job):
        return job.query, job.candidate_backend
    return job.get("query", "?"), job.get("candidate_backend", "?")


def judge_all(jobs):
    """The Results of a batch of Jobs (or wire forms); one that cannot be judged is logged and counted."""
    results = []
    for job in jobs:
        try:
            results.append(judge(job))
        except Exception:
            logger.exception("could not judge a shadow job of %s", _key(job)[0])
            count_failures([job])
    return results
