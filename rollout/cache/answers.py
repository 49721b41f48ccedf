"""cached() and peek(): the two tiers in front of a computation, checked against the generations."""

import hashlib
import inspect
import threading
import time
from functools import cache as memoize

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections

from rollout.cache import generations
from rollout.cache.frozen import freeze
from rollout.cache.memory import Entry
from rollout.conf import get_setting

MISS = object()
PREFIX = "qcache3"  # entries of the keys before versions (qcache2) can never match these
TIERS = ("memory", "redis")


def version_of(*code):
    """The version of the code computing an answer: a digest of its source (or its name when it has no
    readable source) and ROLLOUT_DEPLOY_ID. Part of every key, so a deployed change to that code never
    meets the answers of the code before it — in this process or in Redis."""
    return _version(get_setting("DEPLOY_ID"), code)


@memoize
def _version(deploy_id, code):
    digest = hashlib.sha256(deploy_id.encode())
    for piece in code:
        try:
            text = inspect.getsource(piece)
        except (TypeError, OSError):
            text = f"{getattr(piece, '__module__', '')}.{getattr(piece, '__qualname__', repr(piece))}"
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:16]


def _key(entry, params, version):
    day = int(time.time() // 86400) if entry.cache == "daily" else 0  # the UTC day, cheaply
    return (entry.name, version, day, tuple(params.items()))


def _redis_key(key):
    return f"{PREFIX}:{key[0]}:{hashlib.sha256(repr(key).encode()).hexdigest()}"


_thread = threading.local()


def _connection():
    """This thread's default connection. Django keeps one wrapper per thread for its lifetime; looking it
    up through `connections` costs more than the rest of a hit together (asgiref's Local), so once per thread."""
    try:
        return _thread.connection
    except AttributeError:
        _thread.connection = connections[DEFAULT_DB_ALIAS]
        return _thread.connection


def _wrote_watched_tables_in_this_transaction():
    connection = _connection()
    if not connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('query_cache.wrote', true) = 'on'")  # set by the triggers
        return bool(cursor.fetchone()[0])


def _current(entry):
    """The generations this entry's answer depends on now, or None when the cache must be bypassed."""
    known = generations.listener.generations()
    if known is None:
        return None
    try:
        current = tuple([known[table] for table in entry.reads])
    except KeyError:  # a table without its trigger: no write to it would retire the answer
        return None
    if _wrote_watched_tables_in_this_transaction():
        return None
    return current


def _lookup(key, current, tiers):
    """(answer, tier) from the first tier holding a current entry, else (MISS, False)."""
    if "memory" in tiers:
        kept = generations.listener.memory.get(key)
        if kept is not None and kept.generations == current:
            return kept.answer, "memory"
    if "redis" in tiers:
        shared = cache.get(_redis_key(key))  # unpickled: a fresh object
        if shared is not None and shared[0] == current:
            return _remember(key, current, shared[1]), "redis"
    return MISS, False


def cached(entry, params, compute, version=None):
    """(answer, hit) for entry (.name, .reads: the tables it depends on, .cache: "always" or "daily").

    hit is the tier that answered ("memory" or "redis"), False when compute() answered. params (a mapping
    of hashable values) and version (version_of() the computing code; None: the deploy's) key the answer.
    An answer the in-process tier keeps is read-only (frozen.py): a caller that changes it changes a copy.
    """
    current = _current(entry)
    if current is None:
        return compute(), False
    key = _key(entry, params, version_of() if version is None else version)
    value, tier = _lookup(key, current, TIERS)
    if value is not MISS:
        return value, tier
    value = compute()
    cache.set(_redis_key(key), (current, value), timeout=get_setting("CACHE_TTL_SECONDS"))
    return _remember(key, current, value), False


def _remember(key, current, value):
    """Keep a read-only copy in the in-process tier when it fits; return what the caller gets."""
    memory = generations.listener.memory
    frozen = freeze(value, memory.entry_limit)
    if frozen is None:  # too big, or objects it cannot make read-only: Redis keeps it, this process does not
        return value
    answer, nbytes = frozen
    memory.put(key, Entry(current, answer, nbytes))
    return answer


def peek(entry, params, tier=None, version=None):
    """The answer a tier ("memory", "redis"; None: either) holds now for these parameters, or MISS.

    Only from that tier, never computed: the benchmark times each tier's hit with it.
    """
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    current = _current(entry)
    if current is None:
        return MISS
    key = _key(entry, params, version_of() if version is None else version)
    return _lookup(key, current, TIERS if tier is None else (tier,))[0]
