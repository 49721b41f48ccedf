"""Reading configuration from the environment.

Every function takes the environment mapping explicitly so tests can pass
their own; a bad value raises ConfigurationError naming the variable.
"""

import ipaddress
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import dj_database_url
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}
REDIS_SCHEMES = {"redis", "rediss", "unix"}


class ConfigurationError(ImproperlyConfigured):
    """A setting read from the environment is malformed; the message names the variable."""


def env_bool(environ, name, default):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(environ, name, default, minimum=None):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_float(environ, name, default, minimum=None):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(environ, name, default):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(environ, name, default):
    """A comma-separated list of IP addresses or networks (10.0.0.0/8), each checked as Python's ipaddress reads it."""
    entries = env_list(environ, name, default)
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigurationError(f"{name}: {entry!r} is not an IP address or network") from None
    return entries


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(environ):
    """LOG_LEVEL in any case, one of Python's logging levels."""
    return env_choice({"LOG_LEVEL": environ.get("LOG_LEVEL", "").strip().upper()}, "LOG_LEVEL", "INFO", LOG_LEVELS)


def database_config(environ, base_dir: Path, start_embedded=None, production=False):
    """DATABASES['default'] from DATABASE_URL, or an embedded PostgreSQL when it is unset (not in production)."""
    url = environ.get("DATABASE_URL", "").strip()
    if not url and production:
        raise ConfigurationError(
            "DATABASE_URL must name the database when DJANGO_ENV=production "
            "(the embedded PostgreSQL is for development)"
        )
    if not url:
        data_dir = Path(environ.get("EMBEDDED_PG_DIR") or base_dir / ".data" / "pgdata")
        if start_embedded is None:
            from settings.embedded_postgres import start as start_embedded
        url = start_embedded(data_dir)
    try:
        scheme = urlparse(url).scheme
        if scheme not in POSTGRES_SCHEMES:
            raise ValueError(f"scheme {scheme!r} is not PostgreSQL (use postgres://)")
        config = dj_database_url.parse(url)
        if not config.get("NAME"):
            raise ValueError("no database name in the path")
        if config.get("PORT"):
            int(config["PORT"])
    except ValueError as exc:
        raise ConfigurationError(f"DATABASE_URL is malformed: {exc}") from None
    config["ENGINE"] = "settings.postgresql"
    options = config.pop("OPTIONS", {})
    if "host" in options:  # a Unix socket folder given as ?host=
        config["HOST"] = options.pop("host")
    # libpq counts whole seconds and never waits less than 2: an unreachable host costs a caller at most this.
    options["connect_timeout"] = env_int(environ, "DB_CONNECT_TIMEOUT", 2, minimum=2)
    timeout_ms = env_int(environ, "DB_STATEMENT_TIMEOUT_MS", 5000, minimum=0)
    options["options"] = f"-c statement_timeout={timeout_ms}"
    # Server-side binding lets psycopg prepare a statement after a few runs, so PostgreSQL plans an
    # ORM query once per connection, as PL/pgSQL does for a function's queries (docs/performance.md).
    options["server_side_binding"] = env_bool(environ, "DB_SERVER_SIDE_BINDING", True)
    threshold = env_int(environ, "DB_PREPARE_THRESHOLD", 5, minimum=-1)
    options["prepare_threshold"] = None if threshold < 0 else threshold  # -1: never prepare (PgBouncer)
    if env_bool(environ, "DB_POOL", True):
        options["pool"] = {
            "min_size": env_int(environ, "DB_POOL_MIN_SIZE", 1, minimum=0),
            "max_size": env_int(environ, "DB_POOL_MAX_SIZE", 10, minimum=1),
            "timeout": env_float(environ, "DB_POOL_TIMEOUT", 3.0, minimum=0.1),
        }
        if options["pool"]["min_size"] > options["pool"]["max_size"]:
            raise ConfigurationError(
                f"DB_POOL_MIN_SIZE={options['pool']['min_size']} must be at most "
                f"DB_POOL_MAX_SIZE ({options['pool']['max_size']})"
            )
        config["CONN_MAX_AGE"] = 0
        # The backend checks each pooled connection as it hands it out, without the pool's back-off
        # (settings/postgresql/base.py); Django's own health check would add that back-off.
        config["CONN_HEALTH_CHECKS"] = False
    else:
        config["CONN_MAX_AGE"] = env_int(environ, "DB_CONN_MAX_AGE", 60, minimum=0)
        config["CONN_HEALTH_CHECKS"] = True
    config["OPTIONS"] = options
    config["TEST"] = {"NAME": environ.get("DB_TEST_NAME") or None}
    return config


def cache_config(environ):
    """CACHES['default']: django-redis on REDIS_URL, else local memory."""
    url = environ.get("REDIS_URL", "").strip()
    if not url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pg-retire"}
    try:
        parsed = urlparse(url)
        if parsed.scheme not in REDIS_SCHEMES:
            raise ValueError(f"scheme {parsed.scheme!r} is not redis://, rediss:// or unix://")
        if parsed.scheme == "unix":  # unix:///path/to/redis.sock?db=N: the path is the socket's
            if not parsed.path:
                raise ValueError("no socket path (unix:///path/to/redis.sock?db=N)")
            db = parse_qs(parsed.query).get("db", [""])[-1]
        else:
            if not parsed.hostname:
                raise ValueError("no host")
            parsed.port  # noqa: B018 — raises ValueError on a non-numeric port
            db = parsed.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"database {db!r} is not a number")
    except ValueError as exc:
        raise ConfigurationError(f"REDIS_URL is malformed: {exc}") from None
    timeout = env_float(environ, "REDIS_SOCKET_TIMEOUT", 0.25, minimum=0.01)
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": environ.get("CACHE_KEY_PREFIX", "pg-retire"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": timeout,
            "SOCKET_TIMEOUT": timeout,
            # A Redis outage turns the cache into a no-op rather than an error.
            "IGNORE_EXCEPTIONS": True,
        },
    }


def secret_key(environ, production):
    """The key; in production a weak one (Django's W009 measure) refuses to start rather than warn."""
    key = environ.get("SECRET_KEY", "")
    if production and (not key or key == DEVELOPMENT_SECRET_KEY):
        raise ConfigurationError("SECRET_KEY must be set to a real secret when DJANGO_ENV=production")
    if production and (
        len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or key.startswith(SECRET_KEY_INSECURE_PREFIX)
    ):
        raise ConfigurationError(
            f"SECRET_KEY is weak: production needs at least {SECRET_KEY_MIN_LENGTH} characters, "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them distinct, not starting with {SECRET_KEY_INSECURE_PREFIX!r}"
        )
    return key or DEVELOPMENT_SECRET_KEY


DEVELOPMENT_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]


def allowed_hosts(environ, production):
    """ALLOWED_HOSTS; production has no default (Django would answer every request 400) and must name them."""
    hosts = env_list(environ, "ALLOWED_HOSTS", [] if production else DEVELOPMENT_HOSTS)
    if production and not hosts:
        raise ConfigurationError(
            "ALLOWED_HOSTS must name the host names this site answers to when DJANGO_ENV=production "
            "(comma-separated, e.g. ALLOWED_HOSTS=rollout.example.com)"
        )
    return hosts


def environment_name(environ):
    name = environ.get("DJANGO_ENV", "development").strip().lower()
    if name not in {"development", "production"}:
        raise ConfigurationError(f"DJANGO_ENV={name!r} must be development or production")
    return name


BROKER_SCHEMES = {"amqp", "amqps", "pyamqp", "redis", "rediss", "redis+socket"}


def broker_url(environ):
    """Celery's broker: CELERY_BROKER_URL, else REDIS_URL, else "" (no broker: comparisons run in-process)."""
    url = environ.get("CELERY_BROKER_URL", "").strip()
    if not url:
        return _kombu_redis_url(environ.get("REDIS_URL", "").strip())
    scheme = urlparse(url).scheme
    if scheme not in BROKER_SCHEMES:
        raise ConfigurationError(f"CELERY_BROKER_URL is malformed: scheme {scheme!r} is not one of amqp, redis")
    return url


def _kombu_redis_url(url):
    """REDIS_URL as kombu spells it: redis-py's unix:///path?db=N is kombu's redis+socket:///path?virtual_host=N."""
    parsed = urlparse(url)
    if parsed.scheme != "unix":
        return url
    query = parse_qs(parsed.query)
    db = query.pop("db", [None])[-1]
    if db:
        query["virtual_host"] = [db]
    rest = urlencode(query, doseq=True)
    return f"redis+socket://{parsed.netloc}{parsed.path}" + (f"?{rest}" if rest else "")


def env_choice(environ, name, default, choices):
    value = environ.get(name, "").strip() or default
    if value not in choices:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value
