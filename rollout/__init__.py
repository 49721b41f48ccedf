"""The rollout controller: flags, cohorts, router, shadow comparison. Knows nothing of the legacy domain.

rollout.dispatch("job_needs", actor=actor, people_id=1, bu_id=2, client_id=3)
"""

_ROUTER = {"dispatch", "dispatch_many", "adispatch", "last_decision", "decide"}


def __getattr__(name):
    # Lazy, so `import rollout` works before Django's apps are ready.
    if name in _ROUTER:
        from rollout import router

        return getattr(router, name)
    if name == "Actor":
        from rollout.actors import Actor

        return Actor
    raise AttributeError(name)
