"""The request side of shadow mode, fallback and rescue: a typed, immutable Job, and its wire form.

The request path builds a Job (`Job.of`, the one place one is built) and queues it
(rollout.shadow.queue); nothing here compares or writes. A Job says what a call
did — which side served, the parameters, the actor's ids and each side's
Observation, already reduced to what a worker can receive — and travels as
`to_wire()` (JSON) to a Celery worker or as itself to a local thread.
"""

import uuid
from dataclasses import dataclass, field

from rollout.conf import get_setting
from rollout.shadow.observation import Observation, ReportedError
from rollout.shadow.queue import background

SHADOW, FALLBACK, RESCUE = "shadow", "fallback", "rescue"
SOURCES = (SHADOW, FALLBACK, RESCUE)


def infrastructure(experiment, observation):
    """Whether this observation failed for a reason outside both sides' logic."""
    if not observation.raised:
        return False
    return getattr(observation.exception, "infrastructure", False) or experiment.infrastructure_failure(
        observation.exception
    )


@dataclass(frozen=True)
class Job:
    source: str  # SHADOW (a sampled call), FALLBACK (the candidate raised) or RESCUE (the control raised)
    query: str
    flag: str
    served_backend: str
    candidate_backend: str  # the side whose metrics count this job's fate (a drop, a comparison)
    params: dict
    actor: dict = field(default_factory=dict)
    cache_hit: bool = False
    served: Observation | None = None  # SHADOW: what the caller got
    control: Observation | None = None  # FALLBACK, RESCUE: what each side did
    candidate: Observation | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def of(cls, source, experiment, decision, params, actor, served_backend, **observations):
        limit = get_setting("SHADOW_MAX_ANSWER_SIZE")
        return cls(
            source=source,
            query=decision.query,
            flag=decision.flag,
            served_backend=served_backend,
            candidate_backend=experiment.candidate,
            params=dict(params),
            actor=actor.record() if actor is not None else {},
            cache_hit=bool(decision.cache_hit),
            **{
                name: observation.shippable(infrastructure(experiment, observation), limit)
                for name, observation in observations.items()
            },
        )

    def to_wire(self):
        """A JSON-able dict: what a Celery task carries."""
        wire = {
            "id": self.id,
            "source": self.source,
            "query": self.query,
            "flag": self.flag,
            "served_backend": self.served_backend,
            "candidate_backend": self.candidate_backend,
            "params": self.params,
            "actor": self.actor,
            "cache_hit": self.cache_hit,
        }
        for name in ("served", "control", "candidate"):
            observation = getattr(self, name)
            if observation is not None:
                wire[name] = _observation_to_wire(observation)
        return wire

    @classmethod
    def from_wire(cls, wire):
        return cls(
            **{name: wire[name] for name in ("id", "source", "query", "flag", "served_backend", "candidate_backend")},
            params=wire["params"],
            actor=wire["actor"],
            cache_hit=wire["cache_hit"],
            **{name: _observation_from_wire(wire[name]) for name in ("served", "control", "candidate") if name in wire},
        )


def _observation_to_wire(observation):
    wire = {"backend": observation.backend, "duration": observation.duration}
    if observation.raised:
        error = observation.exception
        wire["error"] = {"kind": error.kind, "message": str(error), "infrastructure": error.infrastructure}
    elif observation.value_omitted:
        wire["omitted"] = True
    else:
        wire["value"] = observation.value
    return wire


def _observation_from_wire(wire):
    error = wire.get("error")
    return Observation(
        wire["backend"],
        value=wire.get("value"),
        exception=ReportedError(**error) if error else None,
        duration=wire["duration"],
        value_omitted=wire.get("omitted", False),
    )


def sample(experiment, decision, params, served, actor):
    """Queue a comparison of both sides for a sampled call; False when it was dropped (and counted)."""
    return background.submit(Job.of(SHADOW, experiment, decision, params, actor, served.backend, served=served))


def fallback(experiment, decision, params, control, candidate, actor):
    """The candidate raised while serving and the control served instead."""
    job = Job.of(FALLBACK, experiment, decision, params, actor, control.backend, control=control, candidate=candidate)
    return background.submit(job)


def rescue(experiment, decision, params, control, candidate, actor):
    """The control raised while serving and the candidate's answer was served instead."""
    job = Job.of(RESCUE, experiment, decision, params, actor, candidate.backend, control=control, candidate=candidate)
    return background.submit(job)
