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


# Decisions are immutable and few (queries × rules × roles × shadow or not): each is built once and shared.
_decisions = {}


def _decision(*facts):
    decision = _decisions.get(facts)
    if decision is None:
        decision = _decisions[facts] = Decision(*facts)
    return decision


def decide(query, actor=None, experiment=None):
    """The Decision for one call, and the FlagState it came from (None when the flag is missing)."""
    experiment = experiment or get_experiment(query)
    name = flag_name(query)
    state = flags.get(name)
    if state is None:
        return _decision(query, name, experiment.control, "control", "missing_flag"), None
    active, rule = state.decide(actor)
    # The budget is asked only when shadow mode is: a query not in shadow pays nothing for it.
    shadow = bool(state.shadow_percent) and state.shadow_sampled(budget.cap(query))
    if active:
        return _decision(query, name, experiment.candidate, "candidate", rule, shadow), state
    return _decision(query, name, experiment.control, "control", rule, shadow), state


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
    """Whether the control's failure (served raised) may be rescued by the candidate."""
    if decision.role != "control" or getattr(experiment, "writes", None):
        return False
    try:
        return guard.may_rescue(decision.flag)
    except Exception:  # noqa: BLE001 — the database that failed the control may fail this too: no rescue
        return False


def _run(experiment, decision, answer):
    """Run the decided backend for the caller (its runs of the control are counted by _count, or by a rescue)."""
    return observe(decision.backend, answer, decision.backend)


def _serve(experiment, decision, state, answer, params, actor):
    """Serve a call; answer(backend) runs one backend. Returns (decision, observation served)."""
    if decision.role == "candidate" and answer.cacheable and get_setting("CACHE_CANDIDATE"):
        decision, served = _through_cache(experiment, decision, params)
    else:
        served = _run(experiment, decision, answer)
    if not served.raised:
        return decision, served
    if decision.role == "candidate" and state.falls_back:
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
            metrics.increment(decision.query, experiment.control, FUNCTION_CALLS, answer.calls)  # it ran, and raised
            job.rescue(experiment, decision, answer.params_of_record, served, rescued, actor)
            served = rescued
            decision = dataclasses.replace(decision, backend=experiment.candidate, role="candidate", rescued=True)
    return decision, served


def _count(experiment, decision, served, answer):
    """Count the served call; when the control served, its runs are the application's own calls of the function
    (retirement tells them from anyone else's)."""
    function_calls = answer.calls if decision.backend == experiment.control else 0
    metrics.served(decision.query, decision.backend, served.duration, served.raised, function_calls)
    if served.duration >= get_setting("SLOW_CALL_SECONDS"):
        logger.warning(
            "slow call: %s on %s took %.3f s (params %s)",
            decision.query,
            decision.backend,
            served.duration,
            answer.params_of_record,
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
    _count(experiment, decision, served, answer)
    # A fallback or a rescue already ran both backends and queued their comparison. A function that may write
    # is never run a second time (flags/writes.py refuses its shadow; this holds whatever the row says).
    if decision.shadow and not (decision.fell_back or decision.rescued or getattr(experiment, "writes", None)):
        samples = [(answer.params_of_record, served)] if served.raised else answer.samples(served)
        for params, observation in samples:
            job.sample(experiment, decision, params, observation, actor)
    _last_decision.set(decision)
    if logger.isEnabledFor(logging.DEBUG):
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
