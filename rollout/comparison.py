"""One comparison function: from what a call did to an immutable Result. Runs on a worker, never on the request path.

A shadow comparison runs both backends in one REPEATABLE READ snapshot on the
worker's connection (SHADOW_DATABASE), so they read the same rows and clock,
and checks the served answer against a fresh answer of the same backend: if
those differ the data moved underneath — noise, not a discrepancy (Diffy's
second control) — unless the served answer came from the cache and the cache
still holds it, which is a stale cache. An infrastructure failure on either
side (connection lost, shutdown, serialization failure, timeout) is retried
once on a fresh connection; if it persists the result says so and nothing
is blamed.

A fallback (the candidate raised while serving) and a rescue (the control
raised while serving and the candidate answered) are judged from the two
observations the call already made.
"""

import logging
from collections import Counter

from django.db import connections, transaction

from rollout import result as outcome
from rollout.conf import get_setting
from rollout.experiments import get_experiment, registry, sides
from rollout.metrics import metrics
from rollout.observation import Observation
from rollout.result import Result

logger = logging.getLogger(__name__)


def infrastructure(experiment, observation):
    """Whether this observation failed for a reason outside both backends' logic."""
    if not observation.raised:
        return False
    return getattr(observation.exception, "infrastructure", False) or experiment.infrastructure_failure(
        observation.exception
    )


def _isolated(experiment, backend, params, using):
    """One backend inside a savepoint, so its failure leaves the snapshot usable."""
    with transaction.atomic(using=using):
        return experiment.run(backend, params)


def observe_both(experiment, params):
    """(control, candidate) observations in one snapshot; an infrastructure failure is retried once."""
    using = get_setting("SHADOW_DATABASE")
    for _attempt in (1, 2):
        try:
            with registry().snapshot(using=using):
                control = Observation.of(experiment.control, _isolated, experiment, experiment.control, params, using)
                candidate = Observation.of(
                    experiment.candidate, _isolated, experiment, experiment.candidate, params, using
                )
        except Exception as exc:
            if not experiment.infrastructure_failure(exc):
                raise
            control = Observation(experiment.control, exception=exc)
            candidate = Observation(experiment.candidate, exception=exc)
        if not (infrastructure(experiment, control) or infrastructure(experiment, candidate)):
            return control, candidate
        connections[using].close()  # the retry gets a fresh connection
    return control, candidate


def _kind_of_errors(difference):
    control_kind, candidate_kind = difference.errors
    if control_kind and candidate_kind:
        return outcome.DIFFERENT_ERRORS
    return outcome.CANDIDATE_ERROR if candidate_kind else outcome.CONTROL_ERROR


def _judged(experiment, base, control, candidate):
    """matched, ignored or the kind of mismatch between a control and a candidate observation."""
    difference = experiment.compare(control.outcome, candidate.outcome)
    if difference.equal:
        return Result(**base, kind=outcome.MATCHED, control=control, candidate=candidate, difference=difference)
    if difference.errors is None:
        reason = experiment.ignored(control.outcome, candidate.outcome, difference)
        kind = outcome.IGNORED if reason else outcome.MISMATCH
    else:
        reason, kind = None, _kind_of_errors(difference)
    return Result(**base, kind=kind, control=control, candidate=candidate, difference=difference, ignore_reason=reason)


def _base(payload, experiment):
    return {
        "comparison_id": payload["id"],
        "query": payload["query"],
        "flag": payload["flag"],
        "served_backend": payload["served_backend"],
        "params": payload["params"],
        "actor": payload["actor"],
        "candidate_backend": experiment.candidate,
    }


def _still_cached(experiment, backend, params, fresh):
    """After the fresh answer, the cache still serves a different one: stale, not noise."""
    found, current = experiment.cached_answer(backend, params)
    return found and not experiment.compare(current, fresh.outcome).equal


def shadow(payload):
    """Compare both backends for a sampled call."""
    experiment = get_experiment(payload["query"])
    base = _base(payload, experiment)
    params = experiment.clean(payload["params"], parse=True)
    served = Observation.from_payload(payload["served"])
    if infrastructure(experiment, served):
        return Result(**base, kind=outcome.INFRASTRUCTURE, candidate=served)
    control, candidate = observe_both(experiment, params)
    if infrastructure(experiment, control) or infrastructure(experiment, candidate):
        return Result(**base, kind=outcome.INFRASTRUCTURE, control=control, candidate=candidate)
    fresh = control if served.backend == experiment.control else candidate
    if not served.value_omitted:
        moved = experiment.compare(served.outcome, fresh.outcome)
        if not moved.equal:
            if payload.get("cache_hit") and _still_cached(experiment, served.backend, params, fresh):
                return Result(**base, kind=outcome.STALE_CACHE, control=fresh, candidate=served, difference=moved)
            return Result(**base, kind=outcome.NOISE, control=control, candidate=candidate, difference=moved)
    return _judged(experiment, base, control, candidate)


def fallback(payload):
    """The candidate raised while serving and the control answered (or failed too)."""
    experiment = get_experiment(payload["query"])
    base = _base(payload, experiment)
    control, candidate = Observation.from_payload(payload["control"]), Observation.from_payload(payload["candidate"])
    if infrastructure(experiment, candidate) or infrastructure(experiment, control):
        return Result(**base, kind=outcome.INFRASTRUCTURE, control=control, candidate=candidate)
    return _judged(experiment, base, control, candidate)


def rescue(payload):
    """The control raised while serving and the candidate's answer was served instead."""
    experiment = get_experiment(payload["query"])
    base = _base(payload, experiment)
    control, candidate = Observation.from_payload(payload["control"]), Observation.from_payload(payload["candidate"])
    difference = experiment.compare(control.outcome, candidate.outcome)
    return Result(**base, kind=outcome.RESCUED, control=control, candidate=candidate, difference=difference)


JUDGES = {"shadow": shadow, "fallback": fallback, "rescue": rescue}


def judge(payload):
    return JUDGES[payload["source"]](payload)


def count_failures(payloads):
    """Count jobs whose result could not be judged or published, under their query's candidate."""
    for query, n in Counter(p.get("query", "?") for p in payloads).items():
        metrics.increment(query, sides(query)[1].backend, "record_failures", n)


def judge_all(payloads):
    """The Results of a batch of jobs; a job that cannot be judged is logged and counted, never fatal to the rest."""
    results = []
    for payload in payloads:
        try:
            results.append(judge(payload))
        except Exception:
            logger.exception("could not judge a %s job of %s", payload.get("source"), payload.get("query"))
            count_failures([payload])
    return results
