"""Every rollout setting's default, read through conf.get_setting (as waffle does)."""

# Where the experiments live: an object satisfying contract.Registry; by default the queries the host's apps
# register in their rollout_queries modules (rollout.registry).
REGISTRY = "rollout.registry.REGISTRY"
# Declares the host's cohorts and resolves a Django user to them (rollout.routing.actors). None: no cohorts.
ACTOR_RESOLVER = None
FLAG_PREFIX = "rollout."
# A process re-reads the flag version at most this often: the bound on propagation.
FLAG_RECHECK_SECONDS = 1.0
# A flag write waits at most this long for another writer's row lock, then fails with nothing changed.
FLAG_LOCK_TIMEOUT_SECONDS = 5.0
# Metrics accumulate in-process and reach PostgreSQL at most this often; rollups are kept this long.
METRICS_FLUSH_SECONDS = 1.0
METRICS_RETENTION_HOURS = 48
SLOW_CALL_SECONDS = 0.5
# The candidate serves through the experiment's never-stale cache (run_cached) when it has one.
CACHE_CANDIDATE = True
# The answer cache (rollout/cache): Redis keeps an answer this long (memory, not correctness: validity comes
# from the table generations); each process keeps at most CACHE_MEMORY_BYTES of answers, none bigger than
# CACHE_MEMORY_ENTRY_BYTES (those only in Redis).
CACHE_TTL_SECONDS = 60
CACHE_MEMORY_BYTES = 64 * 1024 * 1024
CACHE_MEMORY_ENTRY_BYTES = 4 * 1024 * 1024
CACHE_LISTENER_HEARTBEAT_SECONDS = 1.0  # silent for 3x this: the listener is down, the cache bypassed
CACHE_LISTENER_CONNECT_SECONDS = 2.0
# Tables cached answers read besides those the registered experiments name (`reads`): each gets the trigger.
CACHE_READS = ()
# Part of every cache key with a digest of the computing code: set it per deploy (e.g. the commit id).
DEPLOY_ID = ""
# Shadow comparisons, fallback and rescue records (rollout/shadow/).
# "celery": judged by Celery workers through the broker; "thread": by SHADOW_WORKERS threads in this process.
SHADOW_BACKEND = "thread"
SHADOW_WORKERS = 2
SHADOW_QUEUE_SIZE = 1000  # jobs waiting in this process; beyond it a sample is dropped and counted
SHADOW_PUBLISH_LINGER_SECONDS = 0.1  # a publisher waits this long for more jobs to send in the same task
SHADOW_BATCH = 200  # at most this many queued jobs are judged and published together (one task, one transaction)
SHADOW_BROKER_MAX_QUEUE = 10_000  # messages waiting in the broker; beyond it a sample is dropped and counted
# A batch handed to the broker and neither published nor refused after this long is counted as dropped
# (shadow/ledger.py): longer than a redelivery takes (the Redis visibility timeout, 300 s) plus a backlog.
SHADOW_LEDGER_SECONDS = 900.0
SHADOW_DRAIN_SECONDS = 10.0  # at shutdown, how long queued jobs may take before the rest count as drops
SHADOW_MAX_ANSWER_SIZE = 10_000  # a served answer longer than this (rows, or characters) is not shipped
SHADOW_DATABASE = "default"  # the database alias comparisons read (a replica, say); records go to default
# Comparisons may spend at most this share of the database time the request path spends (shadow/budget.py);
# above it the sampling rate is lowered automatically. 0 turns the budget off.
SHADOW_BUDGET = 0.10
SHADOW_DIFF_ROWS = 20
DISCREPANCIES_PER_FINGERPRINT = 50
# Retirement readiness (rollout.lifecycle.readiness): the candidate has served everyone this long, with this
# many shadow comparisons in that stage; no call from outside the application over the window.
RETIRE_AFTER_HOURS = 168
RETIRE_MIN_COMPARISONS = 1000
RETIRE_CALL_WINDOW_HOURS = 24
# The pause on each side of reading PostgreSQL's call count: longer than both the metrics flush and PostgreSQL's
# own statistics flush (an idle session reports its function calls within 10 s, PGSTAT_IDLE_INTERVAL).
RETIRE_SETTLE_SECONDS = 11.0
RECORDED_CALLS_PER_QUERY = 200  # distinct parameter sets of compared calls kept: validation's default cases
# /metrics: a bearer token, or one of these client addresses.
METRICS_TOKEN = ""
METRICS_ALLOWED_IPS = ("127.0.0.1", "::1")
