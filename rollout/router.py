"""Every call to a registered query goes through here: decide, serve, fall back, sample for shadow."""

import dataclasses
import logging
from contextvars import ContextVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from rollout import shadow
from rollout.conf import get_setting
from rollout.decision import Decision
from rollout.experiments import flag_name, get_experiment
from rollout.flag_cache import flags
from rollout.metrics import metrics
from rollout.observation import Observation

logger = logging.getLogger(__name__)
_last_decision = ContextVar("rollout_last_decision", default=None)


def last_decision():
    """The Decision of the last dispatch in this context (thread or task)."""
    return _last_decision.get()


def decide(query, actor=None):
    """The Decision for one call, and the FlagState it came from (None when the flag is missing)."""
    name = flag_name(query)
    state = flags.get(name)
    if state is None:
        return Decision(query, name, get_setting("CONTROL_BACKEND"), "control", "missing_flag"), None
    active, rule = state.decide(actor)
    role = "candidate" if active else "control"
    backend = get_setting("CANDIDATE_BACKEND") if active else get_setting("CONTROL_BACKEND")
    return Decision(query, name, backend, role, rule, shadow=state.shadow_sampled()), state


def _candidate_through_cache(experiment, decision, params):
    hits = []

    def run(backend, params):
        value, hit = experiment.run_cached(backend, params)
        hits.append(hit)
        return value

    served = Observation.of(decision.backend, run, decision.backend, params)
    if hits:
        metrics.increment(decision.query, decision.backend, "cache_hits" if hits[0] else "cache_misses")
        decision = dataclasses.replace(decision, cache_hit=hits[0])
    return decision, served


def _serve(experiment, decision, state, params, actor):
    if decision.role == "candidate" and get_setting("CACHE_CANDIDATE"):
        decision, served = _candidate_through_cache(experiment, decision, params)
    else:
        served = Observation.of(decision.backend, experiment.run, decision.backend, params)
    if served.raised and decision.role == "candidate" and state.fallback:
        logger.warning(
            "candidate %s of %s raised %r; serving the control", decision.backend, decision.query, served.exception
        )
        metrics.increment(decision.query, decision.backend, "fallbacks")
        failed = served
        decision = decision.with_fallback(get_setting("CONTROL_BACKEND"))
        served = Observation.of(decision.backend, experiment.run, decision.backend, params)
        shadow.record_fallback(experiment, decision, params, failed, served, actor)
    return decision, served


def dispatch(query_name, *, actor=None, **params):
    """Run a registered query on the backend its flag chooses for this actor; returns the contract's answer."""
    experiment = get_experiment(query_name)
    cleaned = experiment.clean(params)
    decision, state = decide(query_name, actor)
    decision, served = _serve(experiment, decision, state, cleaned, actor)
    metrics.increment(query_name, decision.backend, "calls")
    metrics.observe(query_name, decision.backend, served.duration)
    if served.raised:
        metrics.increment(query_name, decision.backend, "errors")
    if served.duration >= get_setting("SLOW_CALL_SECONDS"):
        logger.warning(
            "slow call: %s on %s took %.3f s (params %s)", query_name, decision.backend, served.duration, cleaned
        )
    if decision.shadow:
        shadow.submit(experiment, decision, cleaned, served, actor)
    _last_decision.set(decision)
    logger.debug("%s", decision)
    return served.unwrap()


def dispatch_many(query_name, *, vary, values, actor=None, **params):
    """{value: answer} for many values of one parameter (e.g. job_needs for many people), one decision."""
    experiment = get_experiment(query_name)
    values = list(values)
    if values:
        experiment.clean({**params, vary: values[0]})
    decision, state = decide(query_name, actor)
    served = Observation.of(decision.backend, experiment.run_many, decision.backend, vary, values, params)
    if served.raised and decision.role == "candidate" and state.fallback:
        metrics.increment(query_name, decision.backend, "fallbacks")
        decision = decision.with_fallback(get_setting("CONTROL_BACKEND"))
        served = Observation.of(decision.backend, experiment.run_many, decision.backend, vary, values, params)
    metrics.increment(query_name, decision.backend, "calls")
    metrics.observe(query_name, decision.backend, served.duration)
    _last_decision.set(decision)
    return served.unwrap()


def _dispatch_in_worker(query_name, actor, params):
    try:
        return dispatch(query_name, actor=actor, **params)
    finally:
        close_old_connections()  # give the worker thread's connection back to the pool


async def adispatch(query_name, *, actor=None, **params):
    """dispatch() for async code: runs in a worker thread, so the event loop never blocks and calls overlap."""
    return await sync_to_async(_dispatch_in_worker, thread_sensitive=False)(query_name, actor, params)
