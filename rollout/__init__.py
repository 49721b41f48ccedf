"""The rollout controller: flags, cohorts, router, shadow comparison. Knows nothing of the legacy domain.

rollout.register(rollout.Query(name="fn_open_tickets", candidate=open_tickets))   # in an app's rollout_queries.py
rollout.dispatch("fn_open_tickets", actor=actor, client_id=3)
"""

_ROUTER = {"dispatch", "dispatch_many", "adispatch", "last_decision", "decide"}


def __getattr__(name):
    # Lazy, so `import rollout` works before Django's apps are ready.
    if name in _ROUTER:
        from rollout import router

        return getattr(router, name)
    if name == "register":
        from rollout.registry import register

        return register
    if name in ("Query", "Ignore"):
        from rollout import query

        return getattr(query, name)
    if name == "Actor":
        from rollout.actors import Actor

        return Actor
    raise AttributeError(name)
