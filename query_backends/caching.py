"""Never-stale caching of query answers in the default cache (django-redis, or local memory).

An entry is keyed by the query, its parameters and, for queries that read
current_date, the UTC date; it holds the generation of every table the query
reads (registry `reads`) when it was computed, and answers only while those are
current — so a committed write through Django, or midnight, retires every
affected answer, and a hit costs one round trip. Writes that bypass Django (another application
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
    text = repr((definition.name, day, sorted(params.items())))
    return f"{PREFIX}:{definition.name}:{hashlib.sha256(text.encode()).hexdigest()}"


def _lookup(definition, params):
    """One round trip: the generations the answer depends on, and the entry cached for these parameters.

    An entry holds the generations it was computed under; it answers only while they are current.
    """
    key = key_for(definition, params)
    generation_keys = [_generation_key(t) for t in definition.reads]
    found = cache.get_many([*generation_keys, key])
    current = tuple(found.get(k, 0) for k in generation_keys)
    entry = found.get(key)
    value = entry[1] if entry is not None and entry[0] == current else MISS
    return key, current, value


def cached(definition, params, compute):
    """(answer, hit): the cached answer for these parameters, or compute() stored for the next caller."""
    key, current, value = _lookup(definition, params)
    if value is not MISS:
        return value, True
    # Generations read before computing: a write committed meanwhile makes this entry stale at once.
    value = compute()
    cache.set(key, (current, value), timeout=ttl())
    return value, False


def peek(definition, params):
    """The answer cached now for these parameters, or MISS."""
    return _lookup(definition, params)[2]
