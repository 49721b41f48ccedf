"""The rollout controller: flags, cohorts, router, shadow comparison. Knows nothing of the legacy domain.

rollout.register(rollout.Query(name="fn_open_tickets", candidate=open_tickets))   # in an app's rollout_queries.py
rollout.dispatch("fn_open_tickets", actor=actor, client_id=3)
"""

_ROUTER = {"dispatch", "dispatch_many", "adispatch", "last_decision", "decide"}


def __getattr__(name):
    # Lazy, so `import rollout` works before Django's apps are ready.
    if name in _ROUTER:
        from rollout.routing import router

        return getattr(router, name)
    if name == "register":
        from rollout.registry import register

        return register
    if name in ("Query", "Ignore"):
        from rollout import query

        return getattr(query, name)
    if name == "Actor":
        from rollout.routing.actors import Actor

        return Actor
    raise AttributeError(name)


def shutdown():
    """Before a serving process goes: finish its queued comparisons (for at most ROLLOUT_SHADOW_DRAIN_SECONDS;
    the rest are counted as drops) and write the metrics it has not flushed yet. Also run at exit; a server
    calls it where its workers stop (gunicorn.conf.py's worker_exit)."""
    import logging

    from rollout.conf import get_setting
    from rollout.metrics.rollups import metrics
    from rollout.shadow.queue import background

    background.shutdown()
    try:
        metrics.flush_if_counting(timeout=get_setting("SHADOW_DRAIN_SECONDS"))
    except Exception:  # noqa: BLE001 — the database gone as well: these counts go with the process
        logging.getLogger(__name__).warning("could not flush the metrics at shutdown")
