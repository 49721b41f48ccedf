"""Every call to a registered query goes through here: decide, serve, fall back or rescue, sample for shadow.

dispatch and dispatch_many share one path (`_serve`); what differs is only the
behaviour that answers (one call, or many values of one parameter) and how a
served answer is split into per-call shadow samples.
"""

import dataclasses
import logging
from contextvars import ContextVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from rollout.conf import get_setting
from rollout.experiments import flag_name, get_experiment
from rollout.flags.cache import flags
from rollout.metrics.rollups import FUNCTION_CALLS, metrics
from rollout.routing.decision import Decision
from rollout.shadow import guard, job
from rollout.shadow.budget import budget
from rollout.shadow.observation import Observation, observe

logger = logging.getLogger(__name__)
_last_decision = ContextVar("rollout_last_decision", default=None)


def last_decision():
    """The Decision of the last dispatch in this context (thread or task)."""
    return _last_decision.get()


def decide(query, actor=None, experiment=None):
    """The Decision for one call, and the FlagState it came from (None when the flag is missing)."""
    experiment = experiment or get_experiment(query)
    name = flag_name(query)
    state = flags.get(name)
    if state is None:
        return Decision(query, name, experiment.control, "control", "missing_flag"), None
    active, rule = state.decide(actor)
    role = "candidate" if active else "control"
    backend = experiment.candidate if active else experiment.control
    return Decision(query, name, backend, role, rule, shadow=state.shadow_sampled(budget.cap(query))), state


def _through_cache(experiment, decision, params):
    """The candidate's answer through the experiment's never-stale cache."""
    hits = []

    def run(backend, params):
        value, hit = experiment.run_cached(backend, params)
        hits.append(hit)
        return value

    served = observe(decision.backend, run, decision.backend, params)
    if hits:
        metrics.increment(decision.query, decision.backend, "cache_hits" if hits[0] else "cache_misses")
        decision = dataclasses.replace(decision, cache_hit=bool(hits[0]))
    return decision, served


def _rescuable(experiment, decision, served):
    if decision.role != "control" or not served.raised or getattr(experiment, "writes", None):
        return False
    try:
        return guard.may_rescue(decision.flag)
    except Exception:  # noqa: BLE001 — the database that failed the control may fail this too: no rescue
        return False


def _run(experiment, decision, answer):
    """Run the decided backend for the caller; a run of the control is counted as the application's own calls."""
    if decision.backend == experiment.control:
        metrics.increment(decision.query, decision.backend, FUNCTION_CALLS, answer.calls)
    return observe(decision.backend, answer, decision.backend)


def _serve(experiment, decision, state, answer, params, actor):
    """Serve a call; answer(backend) runs one backend. Returns (decision, observation served)."""
    if decision.role == "candidate" and answer.cacheable and get_setting("CACHE_CANDIDATE"):
        decision, served = _through_cache(experiment, decision, params)
    else:
        served = _run(experiment, decision, answer)
    if served.raised and decision.role == "candidate" and state.falls_back:
        logger.warning("candidate of %s raised %r; serving the control", decision.query, served.exception)
        metrics.increment(decision.query, decision.backend, "fallbacks")
        failed, decision = served, decision.with_fallback(experiment.control)
        served = _run(experiment, decision, answer)
        job.fallback(experiment, decision, answer.params_of_record, served, failed, actor)
    elif _rescuable(experiment, decision, served):
        rescued = observe(experiment.candidate, answer, experiment.candidate)
        if not rescued.raised:
            logger.warning(
                "control of %s raised %r; the candidate's answer was served", decision.query, served.exception
            )
            metrics.increment(decision.query, experiment.candidate, "rescues")
            job.rescue(experiment, decision, answer.params_of_record, served, rescued, actor)
            served = rescued
            decision = dataclasses.replace(decision, backend=experiment.candidate, role="candidate", rescued=True)
    return decision, served


def _count(decision, served, params):
    metrics.increment(decision.query, decision.backend, "calls")
    metrics.observe(decision.query, decision.backend, served.duration)
    if served.raised:
        metrics.increment(decision.query, decision.backend, "errors")
    if served.duration >= get_setting("SLOW_CALL_SECONDS"):
        logger.warning(
            "slow call: %s on %s took %.3f s (params %s)", decision.query, decision.backend, served.duration, params
        )


class _One:
    """One call: answer(backend) runs it."""

    cacheable = True
    calls = 1

    def __init__(self, experiment, params):
        self.experiment, self.params, self.params_of_record = experiment, params, params

    def __call__(self, backend):
        return self.experiment.run(backend, self.params)

    def samples(self, served):
        yield self.params, served


class _Many:
    """Many values of one parameter: answer(backend) returns {value: answer}; each value is its own sample."""

    cacheable = False

    def __init__(self, experiment, vary, values, params):
        self.experiment, self.vary, self.values, self.params = experiment, vary, values, params
        self.calls = len(values)  # the control answers them one call each
        # A batch that falls back or is rescued is recorded once, with its first value: replayable as is.
        self.params_of_record = {**params, vary: values[0]} if values else params

    def __call__(self, backend):
        return self.experiment.run_many(backend, self.vary, self.values, self.params)

    def samples(self, served):
        share = served.duration / max(len(served.value), 1)
        for value, answer in served.value.items():
            yield {**self.params, self.vary: value}, Observation(served.backend, value=answer, duration=share)


def _dispatch(experiment, query_name, answer, actor):
    decision, state = decide(query_name, actor, experiment)
    decision, served = _serve(experiment, decision, state, answer, answer.params_of_record, actor)
    _count(decision, served, answer.params_of_record)
    # A fallback or a rescue already ran both backends and queued their comparison. A function that may write
    # is never run a second time (flags/writes.py refuses its shadow; this holds whatever the row says).
    if decision.shadow and not (decision.fell_back or decision.rescued or getattr(experiment, "writes", None)):
        samples = [(answer.params_of_record, served)] if served.raised else answer.samples(served)
        for params, observation in samples:
            job.sample(experiment, decision, params, observation, actor)
    _last_decision.set(decision)
    logger.debug("%s", decision)
    return served.unwrap()


def dispatch(query_name, *, actor=None, **params):
    """Run a registered query on the backend its flag chooses for this actor; returns the contract's answer."""
    experiment = get_experiment(query_name)
    return _dispatch(experiment, query_name, _One(experiment, experiment.clean(params)), actor)


def dispatch_many(query_name, *, vary, values, actor=None, **params):
    """{value: answer} for many values of one parameter (e.g. job_needs for many people), one decision."""
    experiment = get_experiment(query_name)
    values = list(values)
    if values:  # bad parameters fail here, before any decision
        params = {k: v for k, v in experiment.clean({**params, vary: values[0]}).items() if k != vary}
    return _dispatch(experiment, query_name, _Many(experiment, vary, values, params), actor)


def _dispatch_in_worker(query_name, actor, params):
    try:
        return dispatch(query_name, actor=actor, **params)
    finally:
        close_old_connections()  # give the worker thread's connection back to the pool


async def adispatch(query_name, *, actor=None, **params):
    """dispatch() for async code: runs in a worker thread, so the event loop never blocks and calls overlap."""
    return await sync_to_async(_dispatch_in_worker, thread_sensitive=False)(query_name, actor, params)
