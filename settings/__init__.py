"""Project settings: everything comes from the environment (see docs/configuration.md)."""

import os
from pathlib import Path

from settings.environment import (
    ConfigurationError,
    allowed_hosts,
    broker_url,
    cache_config,
    database_config,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_networks,
    environment_name,
    log_level,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
_env = os.environ

ENVIRONMENT = environment_name(_env)
PRODUCTION = ENVIRONMENT == "production"
SECRET_KEY = secret_key(_env, PRODUCTION)
DEBUG = env_bool(_env, "DEBUG", not PRODUCTION)
ALLOWED_HOSTS = allowed_hosts(_env, PRODUCTION)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "waffle",
    "query_backends",
    "rollout",
]

MIDDLEWARE = [
    "rollout.api.middleware.ApiErrorMiddleware",  # first: it turns any error under /api/ into JSON
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
    "rollout.routing.middleware.ActorMiddleware",
]

ROOT_URLCONF = "settings.urls"
WSGI_APPLICATION = "settings.wsgi.application"
ASGI_APPLICATION = "settings.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "settings" / "templates"],  # the project's admin index (a link to the dashboard)
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_config(_env, BASE_DIR, production=PRODUCTION)}
if _env.get("DATABASE_REPLICA_URL", "").strip():
    # A read replica for shadow comparisons (ROLLOUT_SHADOW_DATABASE=replica); records go to default.
    DATABASES["replica"] = database_config({"DATABASE_URL": _env["DATABASE_REPLICA_URL"]}, BASE_DIR)
DATABASE_ROUTERS = ["rollout.snapshot.SnapshotRouter"]
CACHES = {"default": cache_config(_env)}
REDIS_CONFIGURED = CACHES["default"]["BACKEND"].startswith("django_redis")
# A Redis outage must never become an error for a caller.
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# Django's request limits; a request past one gets a JSON error under /api/ naming the setting and the limit.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int(_env, "DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000, minimum=1)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"

# The host's own waffle flags keep waffle's model; query flags are rollout.QueryFlag, beside them.
WAFFLE_CACHE_NAME = "default"

# query_backends registers its queries in its rollout_queries.py, as docs/adopting.md tells any host; these
# settings declare its cohorts and the prefix of its flags. ROLLOUT_REGISTRY (environment) swaps in another
# registry: worker processes of the tests route the toy experiment so.
if _env.get("ROLLOUT_REGISTRY", "").strip():
    ROLLOUT_REGISTRY = _env["ROLLOUT_REGISTRY"]
ROLLOUT_ACTOR_RESOLVER = "query_backends.actors.RESOLVER"
ROLLOUT_FLAG_PREFIX = "orm."

ROLLOUT_FLAG_RECHECK_SECONDS = env_float(_env, "ROLLOUT_FLAG_RECHECK_SECONDS", 1.0, minimum=0.0)
ROLLOUT_SHADOW_WORKERS = env_int(_env, "ROLLOUT_SHADOW_WORKERS", 2, minimum=1)
ROLLOUT_SHADOW_QUEUE_SIZE = env_int(_env, "ROLLOUT_SHADOW_QUEUE_SIZE", 1000, minimum=1)
ROLLOUT_SHADOW_BATCH = env_int(_env, "ROLLOUT_SHADOW_BATCH", 200, minimum=1)
ROLLOUT_SHADOW_PUBLISH_LINGER_SECONDS = env_float(_env, "ROLLOUT_SHADOW_PUBLISH_LINGER_SECONDS", 0.1, minimum=0.0)
ROLLOUT_SHADOW_BROKER_MAX_QUEUE = env_int(_env, "ROLLOUT_SHADOW_BROKER_MAX_QUEUE", 10_000, minimum=1)
ROLLOUT_SHADOW_DRAIN_SECONDS = env_float(_env, "ROLLOUT_SHADOW_DRAIN_SECONDS", 10.0, minimum=0.0)
ROLLOUT_SHADOW_LEDGER_SECONDS = env_float(_env, "ROLLOUT_SHADOW_LEDGER_SECONDS", 900.0, minimum=1.0)
ROLLOUT_SHADOW_BUDGET = env_float(_env, "ROLLOUT_SHADOW_BUDGET", 0.10, minimum=0.0)
ROLLOUT_SHADOW_DATABASE = _env.get("ROLLOUT_SHADOW_DATABASE", "default")
ROLLOUT_METRICS_RETENTION_HOURS = env_float(_env, "ROLLOUT_METRICS_RETENTION_HOURS", 48, minimum=0.1)

# Celery: shadow comparisons and fallback records run on workers (`celery -A settings worker`) when a
# broker is configured — CELERY_BROKER_URL, else REDIS_URL; with neither, on threads in the web process.
CELERY_BROKER_URL = broker_url(_env)
ROLLOUT_SHADOW_BACKEND = env_choice(
    _env, "ROLLOUT_SHADOW_BACKEND", "celery" if CELERY_BROKER_URL else "thread", ("celery", "thread")
)
CELERY_TASK_DEFAULT_QUEUE = _env.get("ROLLOUT_CELERY_QUEUE", "rollout")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
# The autopilot's tick (`celery -A settings beat` beside a worker): advance or pause queries on their plans.
ROLLOUT_AUTOPILOT_SECONDS = env_float(_env, "ROLLOUT_AUTOPILOT_SECONDS", 60.0, minimum=1.0)
# Retirement readiness (docs/lifecycle.md).
ROLLOUT_RETIRE_AFTER_HOURS = env_float(_env, "ROLLOUT_RETIRE_AFTER_HOURS", 168.0, minimum=0.0)
ROLLOUT_RETIRE_MIN_COMPARISONS = env_int(_env, "ROLLOUT_RETIRE_MIN_COMPARISONS", 1000, minimum=0)
ROLLOUT_RETIRE_CALL_WINDOW_HOURS = env_float(_env, "ROLLOUT_RETIRE_CALL_WINDOW_HOURS", 24.0, minimum=0.0)
ROLLOUT_RETIRE_SETTLE_SECONDS = env_float(_env, "ROLLOUT_RETIRE_SETTLE_SECONDS", 11.0, minimum=0.0)
CELERY_BEAT_SCHEDULE = {"rollout-autopilot": {"task": "rollout.autopilot", "schedule": ROLLOUT_AUTOPILOT_SECONDS}}
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int(_env, "CELERY_WORKER_PREFETCH_MULTIPLIER", 8, minimum=1)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery closes the database connections — and, under prefork, Django's connection pool — around every task
# unless told to reuse them: that costs a new connection per task and breaks the metrics writer's connection.
CELERY_DB_REUSE_MAX = env_int(_env, "CELERY_DB_REUSE_MAX", 10_000, minimum=1)
# The web side never waits on the broker for long: no publish retries, a short connection timeout.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = env_float(_env, "CELERY_BROKER_CONNECTION_TIMEOUT", 1.0, minimum=0.01)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker outlives a broker outage of any length: it reconnects for ever (Celery's default gives up after 100
# attempts) and cancels the tasks it holds when the connection goes — unacknowledged, they are delivered again.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis: an unacknowledged task of a dead worker is delivered again after this long.
    "visibility_timeout": env_int(_env, "CELERY_VISIBILITY_TIMEOUT", 300, minimum=1),
    # …checked every ten of these intervals (kombu's throttle).
    "unacked_restore_interval": env_float(_env, "CELERY_UNACKED_RESTORE_INTERVAL", 10.0, minimum=0.1),
    "socket_timeout": 1.0,
    "socket_connect_timeout": 1.0,
}
ROLLOUT_METRICS_TOKEN = _env.get("ROLLOUT_METRICS_TOKEN", "")
ROLLOUT_METRICS_ALLOWED_IPS = tuple(env_networks(_env, "ROLLOUT_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"]))
# The answer cache (rollout/cache); the environment keeps the names operators already use.
ROLLOUT_CACHE_TTL_SECONDS = env_int(_env, "QUERY_CACHE_TTL_SECONDS", 60, minimum=1)
ROLLOUT_CACHE_MEMORY_BYTES = env_int(_env, "QUERY_CACHE_MEMORY_BYTES", 64 * 1024 * 1024, minimum=0)
ROLLOUT_CACHE_MEMORY_ENTRY_BYTES = env_int(_env, "QUERY_CACHE_MEMORY_ENTRY_BYTES", 4 * 1024 * 1024, minimum=0)
ROLLOUT_CACHE_LISTENER_HEARTBEAT_SECONDS = env_float(_env, "QUERY_CACHE_LISTENER_HEARTBEAT_SECONDS", 1.0, minimum=0.05)
ROLLOUT_CACHE_LISTENER_CONNECT_SECONDS = env_float(_env, "QUERY_CACHE_LISTENER_CONNECT_SECONDS", 2.0, minimum=0.1)
# The legacy tables the tenant wall's and the actor's cached lookups read, besides the queries' own `reads`.
ROLLOUT_CACHE_READS = (
    *("typeassist", "bt", "people", "pgroup", "pgbelonging", "sitepeople"),
    *("asset", "questionset", "job", "jobneed", "jobneeddetails", "capability"),
)
ROLLOUT_DEPLOY_ID = _env.get("DEPLOY_ID", "")
ROLLOUT_SLOW_CALL_SECONDS = env_float(_env, "ROLLOUT_SLOW_CALL_SECONDS", 0.5, minimum=0.0)

# Optional profiling: django-silk, when installed and asked for.
SILK_ENABLED = env_bool(_env, "SILK", False)
if SILK_ENABLED:
    import importlib.util

    if importlib.util.find_spec("silk") is None:
        raise ConfigurationError("SILK=true needs django-silk: pip install django-silk")
    INSTALLED_APPS.append("silk")
    MIDDLEWARE.insert(0, "silk.middleware.SilkyMiddleware")

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool(_env, "SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int(_env, "SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOG_LEVEL = log_level(_env)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "redis_outage": {"()": "rollout.outage.OncePerBurst", "what": "Redis"},
        "bad_host": {
            "()": "rollout.outage.OncePerBurst",
            "what": "requests refused for their Host header",
            "message": "%s (the first: %s); each is answered 400; the rest of this burst is not logged",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # The pool warns for each broken connection the backend hands back to it and for each failed
        # reconnection attempt; the backend's circuit says it once per outage (settings/postgresql).
        "psycopg.pool": {"level": "ERROR"},
        # Django's own console handler would print every request warning a second time, beside the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # django-redis logs every ignored operation with a traceback: one line per outage is enough.
        "django_redis.cache": {"filters": ["redis_outage"]},
        # Django logs each one at ERROR with a traceback; a scanner or a misrouted proxy sends thousands.
        "django.security.DisallowedHost": {"filters": ["bad_host"]},
    },
}

# The Celery app, so that tasks published from this process go to the configured broker.
from settings.celery import app as celery_app  # noqa: E402, F401
