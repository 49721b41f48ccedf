"""Every rollout setting's default, read through conf.get_setting (as waffle does)."""

# Where the experiments live: an object with get(name), names() and snapshot(); each
# experiment has name, clean(params, parse=False), run(backend, params), compare(control, candidate).
REGISTRY = "query_backends.registry.REGISTRY"
# Resolves a Django user to the legacy person behind it: callable(user) -> dict | None.
ACTOR_RESOLVER = "query_backends.actors.resolve_user"
CONTROL_BACKEND = "pg"
CANDIDATE_BACKEND = "orm"
FLAG_PREFIX = "orm."
# A process re-reads the flag version at most this often: the bound on propagation.
FLAG_RECHECK_SECONDS = 1.0
# Metrics accumulate in-process and reach the shared store at most this often.
METRICS_FLUSH_SECONDS = 1.0
LATENCY_SAMPLES = 1000
SLOW_CALL_SECONDS = 0.5
# The candidate serves through the experiment's never-stale cache (run_cached) when it has one.
CACHE_CANDIDATE = True
# Shadow comparisons (shadow.py).
SHADOW_WORKERS = 2
SHADOW_QUEUE_SIZE = 100
SHADOW_DIFF_ROWS = 20
DISCREPANCIES_PER_FINGERPRINT = 50
# /metrics: a bearer token, or one of these client addresses.
METRICS_TOKEN = ""
METRICS_ALLOWED_IPS = ("127.0.0.1", "::1")
