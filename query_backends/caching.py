"""Never-stale caching of query answers in the default cache (django-redis, or local memory).

A key holds the query, its parameters, the current generation of every table
the query reads (registry `reads`) and, for queries that read current_date,
the UTC date — so a committed write through Django, or midnight, moves every
affected answer to a new key. Writes that bypass Django (another application
on the same database) are bounded by CACHE_TTL_SECONDS. The queries that read
now() itself (job_needs, external_tour_job_needs) are not cached: their answer
changes as the clock passes a plan's expiry, which no key can follow.
An unreachable Redis makes the cache a no-op (IGNORE_EXCEPTIONS), never an error.
"""

import hashlib
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

MISS = object()
PREFIX = "qcache"


def ttl():
    return getattr(settings, "QUERY_CACHE_TTL_SECONDS", 60)


def _generation_key(table):
    return f"{PREFIX}:gen:{table}"


def generations(tables):
    keys = [_generation_key(t) for t in tables]
    found = cache.get_many(keys)
    return tuple(found.get(k, 0) for k in keys)


def bump(tables):
    for table in tables:
        key = _generation_key(table)
        cache.add(key, 0, timeout=None)
        try:
            cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=None)


def key_for(definition, params):
    day = datetime.now(UTC).date().isoformat() if definition.cache == "daily" else ""
    text = repr((definition.name, generations(definition.reads), day, sorted(params.items())))
    return f"{PREFIX}:{definition.name}:{hashlib.sha256(text.encode()).hexdigest()}"


def cached(definition, params, compute):
    """(answer, hit): the cached answer for these parameters, or compute() stored for the next caller."""
    key = key_for(definition, params)
    value = cache.get(key, MISS)
    if value is not MISS:
        return value, True
    value = compute()
    cache.set(key, value, timeout=ttl())
    return value, False


def peek(definition, params):
    """The answer cached now for these parameters, or MISS."""
    return cache.get(key_for(definition, params), MISS)
