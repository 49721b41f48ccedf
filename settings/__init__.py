"""Project settings: everything comes from the environment (see docs/configuration.md)."""

import os
from pathlib import Path

from settings.environment import (
    ConfigurationError,
    cache_config,
    database_config,
    env_bool,
    env_float,
    env_int,
    env_list,
    environment_name,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
_env = os.environ

ENVIRONMENT = environment_name(_env)
PRODUCTION = ENVIRONMENT == "production"
SECRET_KEY = secret_key(_env, PRODUCTION)
DEBUG = env_bool(_env, "DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list(_env, "ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])

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
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
    "rollout.middleware.ActorMiddleware",
]

ROOT_URLCONF = "settings.urls"
WSGI_APPLICATION = "settings.wsgi.application"
ASGI_APPLICATION = "settings.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": database_config(_env, BASE_DIR)}
CACHES = {"default": cache_config(_env)}
REDIS_CONFIGURED = CACHES["default"]["BACKEND"].startswith("django_redis")
# A Redis outage must never become an error for a caller.
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"

WAFFLE_FLAG_MODEL = "rollout.QueryFlag"
WAFFLE_CACHE_NAME = "default"
WAFFLE_CREATE_MISSING_FLAGS = False

ROLLOUT_FLAG_RECHECK_SECONDS = env_float(_env, "ROLLOUT_FLAG_RECHECK_SECONDS", 1.0, minimum=0.0)
ROLLOUT_SHADOW_WORKERS = env_int(_env, "ROLLOUT_SHADOW_WORKERS", 2, minimum=1)
ROLLOUT_SHADOW_QUEUE_SIZE = env_int(_env, "ROLLOUT_SHADOW_QUEUE_SIZE", 100, minimum=1)
ROLLOUT_METRICS_TOKEN = _env.get("ROLLOUT_METRICS_TOKEN", "")
ROLLOUT_METRICS_ALLOWED_IPS = tuple(env_list(_env, "ROLLOUT_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"]))
QUERY_CACHE_TTL_SECONDS = env_int(_env, "QUERY_CACHE_TTL_SECONDS", 60, minimum=1)
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

LOG_LEVEL = _env.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
