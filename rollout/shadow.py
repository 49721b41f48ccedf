"""The request side of shadow mode, fallback and rescue: describe what happened and hand it to the background.

Nothing here compares or writes anything; it builds a JSON-able job (a
comparison id, the query, the parameters, the actor's ids and what each
backend did) and queues it. comparison.py judges it on a worker.
"""

import uuid

from rollout.background import background
from rollout.comparison import infrastructure
from rollout.conf import get_setting


def _job(source, experiment, decision, params, actor, served_backend, **observations):
    limit = get_setting("SHADOW_MAX_ANSWER_SIZE")
    return {
        "id": str(uuid.uuid4()),
        "source": source,
        "query": decision.query,
        "flag": decision.flag,
        "served_backend": served_backend,
        "params": dict(params),
        "actor": actor.record() if actor is not None else {},
        "cache_hit": bool(decision.cache_hit),
        **{
            name: observation.as_payload(infrastructure(experiment, observation), limit)
            for name, observation in observations.items()
        },
    }


def sample(experiment, decision, params, served, actor):
    """Queue a comparison of both backends for a sampled call."""
    job = _job("shadow", experiment, decision, params, actor, served.backend, served=served)
    return background.submit(job, decision.query, experiment.candidate)


def fallback(experiment, decision, params, control, candidate, actor):
    """The candidate raised while serving and the control served instead."""
    job = _job("fallback", experiment, decision, params, actor, control.backend, control=control, candidate=candidate)
    return background.submit(job, decision.query, experiment.candidate)


def rescue(experiment, decision, params, control, candidate, actor):
    """The control raised while serving and the candidate's answer was served instead."""
    job = _job("rescue", experiment, decision, params, actor, candidate.backend, control=control, candidate=candidate)
    return background.submit(job, decision.query, experiment.candidate)
