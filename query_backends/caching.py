"""The never-stale answer cache: a bounded in-process LRU in front of the shared cache (Redis).

Validity comes from PostgreSQL itself. A statement-level trigger on every
legacy table bumps that table's generation and NOTIFYs on commit (migration
0020), whoever writes — Django, psql, another application. Each process keeps
the generations in memory, fed by one LISTENing connection on a daemon thread
(GenerationListener); a hit needs no network round trip.

An entry holds the generations of the tables its query reads (registry
`reads`), read *before* computing it, and answers only while they are still
current. A write the computation did not see commits after that read, so the
generation it bumps moves past the entry's for good (generations only grow):
an entry is never stale once its process has heard of the write, which takes
one NOTIFY delivery. The same check guards both tiers, so a Redis entry written
by another process, or one that survived a Redis stall, is checked too.

No generations, no cache: while the listener is down (or silent past its
liveness bound) every call computes and nothing is stored; the in-process tier
is cleared when it reconnects. Inside a transaction that has written a legacy
table, the database answers too (one query checks, in atomic blocks only): the
cache holds committed answers only, and a transaction must see its own writes.

Keys: query, parameters and, for queries that read current_date, the UTC date.
The queries that read now() itself (job_needs, external_tour_job_needs) are not
cached: their answer changes as the clock passes a plan's expiry. Every caller
gets its own copy of an answer, so mutating it never changes another's.
"""

import copy
import hashlib
import logging
import os
import threading
import time
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from uuid import UUID

import psycopg
from cachetools import LRUCache
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)

MISS = object()
PREFIX = "qcache2"  # not the Redis-counter generations of the first cache: those numbers could match these
CHANNEL = "query_cache"
TIERS = ("memory", "redis")


def _setting(name, default):
    return getattr(settings, name, default)


class GenerationListener:
    """This process's copy of the legacy tables' generations, kept current by one LISTENing connection."""

    def __init__(self):
        self._start_lock = threading.Lock()
        self._thread = None
        self._first_attempt = threading.Event()
        self._stopping = threading.Event()
        self._generations = None  # {table: generation}, None while down
        self._alive_at = 0.0
        self.backend_pid = None  # the listening connection's server pid, for operators and tests
        self._silent_for_at_most = 3 * _heartbeat()  # kept here: a hit must not pay for a settings lookup
        self.memory = MemoryTier(_setting("QUERY_CACHE_MEMORY_ENTRIES", 4096))

    def generations(self):
        """{table: generation}, or None when they cannot be trusted (listener down or silent too long)."""
        if self._thread is None and not self._stopping.is_set():
            self._start()
        generations = self._generations
        if generations is None or time.monotonic() - self._alive_at > self._silent_for_at_most:
            return None
        return generations

    def _start(self):
        with self._start_lock:
            if self._thread is None:
                params = _listener_params()
                self._thread = threading.Thread(target=self._run, args=(params,), name="query-cache-listener")
                self._thread.daemon = True
                self._thread.start()
        self._first_attempt.wait(_setting("QUERY_CACHE_LISTENER_CONNECT_SECONDS", 2.0))

    def _run(self, params):
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**params) as conn:
                    self._listen(conn)
            except Exception as exc:  # noqa: BLE001 — any failure: go down, reconnect
                self._down(exc)
            self._first_attempt.set()
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _listen(self, conn):
        conn.execute(f"LISTEN {CHANNEL}")  # before the first read: no commit falls between the two
        self.backend_pid = conn.info.backend_pid
        self._refresh(conn)
        self.memory.clear()
        self._first_attempt.set()
        logger.info("query cache listener connected (backend pid %s)", self.backend_pid)
        compacted = time.monotonic()
        while not self._stopping.is_set():
            # Wake on the first notification or after a heartbeat; either way re-read the sums: the read is
            # the heartbeat, and notifications that arrived meanwhile are covered by it.
            for _ in conn.notifies(timeout=_heartbeat(), stop_after=1):
                pass
            self._refresh(conn)
            if time.monotonic() - compacted > 60:
                conn.execute("SELECT query_cache_compact()")
                compacted = time.monotonic()

    def stop(self):
        """Close the listening connection for good (e.g. before a test database is dropped); the cache is bypassed."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=3 * _heartbeat())
        self._down(None)

    def _refresh(self, conn):
        rows = conn.execute("SELECT table_name, sum(n)::bigint FROM query_cache_generation GROUP BY table_name")
        self._generations = dict(rows.fetchall())
        self._alive_at = time.monotonic()

    def _down(self, exc):
        if self._generations is not None and exc is not None:
            logger.warning("query cache listener lost its connection (%s): the cache is bypassed", exc)
        self._generations = None
        self.backend_pid = None
        self.memory.clear()


class MemoryTier:
    """A bounded, thread-safe LRU of {key: (generations, answer, copier)}; only copies of answers are handed out."""

    def __init__(self, size):
        self._lock = threading.Lock()
        self._entries = LRUCache(maxsize=size)

    def get(self, key):
        with self._lock:
            try:
                return self._entries[key]  # one lookup (Cache.get looks twice)
            except KeyError:
                return None

    def put(self, key, entry):
        with self._lock:
            self._entries[key] = entry

    def clear(self):
        with self._lock:
            self._entries.clear()


def _heartbeat():
    return _setting("QUERY_CACHE_LISTENER_HEARTBEAT_SECONDS", 1.0)


def _listener_params():
    """The default database's connection settings, for a plain autocommit psycopg connection."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    heartbeat = _heartbeat()
    return {
        **params,
        "autocommit": True,
        "application_name": f"query_cache_listener:{os.getpid()}",
        "connect_timeout": max(1, round(_setting("QUERY_CACHE_LISTENER_CONNECT_SECONDS", 2.0))),
        # A silently dead network path fails the heartbeat instead of hanging it.
        "tcp_user_timeout": int(3000 * heartbeat),
        "keepalives": 1,
        "keepalives_idle": max(1, round(heartbeat)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }


listener = GenerationListener()


def _after_fork():
    """A forked child has no listener thread: it starts its own on first use."""
    global listener
    listener = GenerationListener()


os.register_at_fork(after_in_child=_after_fork)


def ttl():
    return _setting("QUERY_CACHE_TTL_SECONDS", 60)


def _memory_key(definition, params):
    day = int(time.time() // 86400) if definition.cache == "daily" else 0  # the UTC day, cheaply
    return (definition.name, day, tuple(sorted(params.items())))


def _redis_key(memory_key):
    return f"{PREFIX}:{memory_key[0]}:{hashlib.sha256(repr(memory_key).encode()).hexdigest()}"


def _wrote_legacy_tables_in_this_transaction():
    connection = connections[DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('query_cache.wrote', true) = 'on'")  # set by the triggers
        return bool(cursor.fetchone()[0])


def _current(definition):
    """The generations this query's answer depends on now, or None when the cache must be bypassed."""
    generations = listener.generations()
    if generations is None or _wrote_legacy_tables_in_this_transaction():
        return None
    return tuple([generations.get(table, 0) for table in definition.reads])


def _lookup(key, current, tiers):
    """(answer, tier) from the first tier holding a current entry, else (MISS, False)."""
    if "memory" in tiers:
        entry = listener.memory.get(key)
        if entry is not None and entry[0] == current:
            return entry[2](entry[1]), "memory"
    if "redis" in tiers:
        entry = cache.get(_redis_key(key))  # unpickled: a fresh object
        if entry is not None and entry[0] == current:
            _remember(key, current, entry[1])
            return entry[1], "redis"
    return MISS, False


def cached(definition, params, compute):
    """(answer, hit): hit is the tier that answered ("memory" or "redis"), False when compute() answered."""
    current = _current(definition)
    if current is None:
        return compute(), False
    key = _memory_key(definition, params)
    value, tier = _lookup(key, current, TIERS)
    if value is not MISS:
        return value, tier
    value = compute()
    _remember(key, current, value)
    cache.set(_redis_key(key), (current, value), timeout=ttl())
    return value, False


def _remember(key, current, value):
    """Keep a copy in the in-process tier, with the cheapest way to copy it again on every hit."""
    copier = _copier(value)
    listener.memory.put(key, (current, copier(value), copier))


# Answers are lists and dicts of these; a copy may share them, as they cannot change.
_LEAVES = frozenset({str, int, float, bool, type(None), bytes, Decimal, datetime, date, dt_time, timedelta, UUID})


def _copier(value):
    """A function copying this answer down to its immutable leaves: a caller mutates only its own copy.

    Decided once per entry, so a hit on the usual answer (rows of scalars) copies at C speed; a pickle
    round trip or copy.deepcopy would cost more than some queries it saves (docs/performance.md).
    """
    kind = type(value)
    if kind in _LEAVES:
        return _same
    if kind is list and all(type(v) in _LEAVES for v in value):
        return list.copy
    if kind is list and all(type(r) is dict and all(type(v) in _LEAVES for v in r.values()) for r in value):
        return _copy_rows
    return copy.deepcopy


def _same(value):
    return value


def _copy_rows(rows):
    return [row.copy() for row in rows]


def peek(definition, params, tier=None):
    """The answer a tier ("memory", "redis"; None: either) holds now for these parameters, or MISS.

    Only from that tier, never computed: the benchmark times each tier's hit with it.
    """
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    current = _current(definition)
    if current is None:
        return MISS
    return _lookup(_memory_key(definition, params), current, TIERS if tier is None else (tier,))[0]
