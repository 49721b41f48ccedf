"""cached() and peek(): the two tiers in front of a computation, checked against the generations."""

import hashlib
import inspect
import sys
import threading
import time
from functools import cache as memoize
from operator import itemgetter

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
    """The version of the code computing an answer: a digest of its source (a module, a function; text is
    taken as it is, e.g. a SQL function's definition; a name when it has no readable source) and
    ROLLOUT_DEPLOY_ID. Part of every key, so a deployed change to that code never meets the answers of the
    code before it — in this process or in Redis."""
    return _version(get_setting("DEPLOY_ID"), code)


def versions(experiment, *control):
    """{backend: version} of an experiment's two sides: the candidate's is its twin's whole module (its
    helpers too), the control's the deploy and `control` (what defines it, when the process can read it)."""
    twin = sys.modules[experiment.twin.__module__]
    return {
        experiment.control: f"{experiment.control}:{version_of(*control)}",
        experiment.candidate: f"{experiment.candidate}:{version_of(twin)}",
    }


@memoize
def _version(deploy_id, code):
    digest = hashlib.sha256(deploy_id.encode())
    for piece in code:
        try:
            text = piece if isinstance(piece, str) else inspect.getsource(piece)
        except (TypeError, OSError):
            text = f"{getattr(piece, '__module__', '')}.{getattr(piece, '__qualname__', repr(piece))}"
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:16]


def _redis_key(key):
    return f"{PREFIX}:{key[0]}:{hashlib.sha256(repr(key).encode()).hexdigest()}"


_thread = threading.local()


def _connection():
    """This thread's default connection. Django keeps one wrapper per thread for its lifetime; looking it
    up through `connections` costs more than the rest of a hit together (asgiref's Local), so once per thread."""
    _thread.connection = connections[DEFAULT_DB_ALIAS]
    return _thread.connection


def _wrote_watched_tables(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('query_cache.wrote', true) = 'on'")  # set by the triggers
        return bool(cursor.fetchone()[0])


@memoize
def _generations_of(reads):
    """A getter of these tables' generations out of the listener's {table: generation}: C code (one table:
    its generation alone; none: always the same empty tuple). Kept in each in-process entry too: a hit
    reads its generations through the entry's own getter, without hashing `reads` to find this one."""
    return itemgetter(*reads) if reads else lambda known: ()


# What a call learns before computing: the answer (MISS when no tier holds a current one), the tier that
# held it (False: none), and the key and generations to keep a computed answer under (None: keep nothing).
_BYPASS = (MISS, False, None, None)


def _read(entry, params, version, tiers):
    """(answer, tier, key, current generations) — see _BYPASS. One function, not one per step: a hit is read
    right after the caller's database work has evicted the CPU caches, where each Python frame and each
    object it touches costs a fraction of a microsecond of a hit's few."""
    listener = generations.listener
    known = listener.known
    if known is None or time.monotonic() > listener.known_until:
        known = listener.generations()  # not started yet (it starts), or down or silent (None)
        if known is None:
            return _BYPASS
    try:
        connection = _thread.connection
    except AttributeError:
        connection = _connection()
    if connection.in_atomic_block and _wrote_watched_tables(connection):
        return _BYPASS
    day = int(time.time() // 86400) if entry.cache == "daily" else 0  # the UTC day, cheaply
    # Flat, the parameters' names then their values: one tuple to hash and compare, not one per parameter.
    key = (entry.name, version_of() if version is None else version, day, *params, *params.values())
    reads = entry.reads
    kept = listener.memory.get(key) if "memory" in tiers else None
    # Nothing kept, or kept by a declaration of other tables: the caller's tables are checked (tuple() of a
    # tuple is the tuple itself).
    kept_for_these = kept is not None and kept.reads is reads
    generations_of = kept.generations_of if kept_for_these else _generations_of(tuple(reads))
    try:
        current = generations_of(known)
    except KeyError:  # a table without its trigger: no write to it would retire the answer
        return _BYPASS
    if kept is not None and kept.generations == current:
        return kept.answer, "memory", key, current
    if "redis" in tiers:
        shared = cache.get(_redis_key(key))  # unpickled: a fresh object
        if shared is not None and shared[0] == current:
            return _remember(key, current, reads, shared[1]), "redis", key, current
    return MISS, False, key, current


def cached(entry, params, compute, version=None):
    """(answer, hit) for entry (.name, .reads: the tables it depends on, .cache: "always" or "daily").

    hit is the tier that answered ("memory" or "redis"), False when compute() answered. params (a mapping
    of hashable values) and version (version_of() the computing code; None: the deploy's) key the answer.
    An answer the in-process tier keeps is read-only (frozen.py): a caller that changes it changes a copy.
    """
    value, tier, key, current = _read(entry, params, version, TIERS)
    if tier:
        return value, tier
    value = compute()
    if key is None:
        return value, False
    cache.set(_redis_key(key), (current, value), timeout=get_setting("CACHE_TTL_SECONDS"))
    return _remember(key, current, entry.reads, value), False


def _remember(key, current, reads, value):
    """Keep a read-only copy in the in-process tier when it fits; return what the caller gets."""
    memory = generations.listener.memory
    frozen = freeze(value, memory.entry_limit)
    if frozen is None:  # too big, or objects it cannot make read-only: Redis keeps it, this process does not
        return value
    answer, nbytes = frozen
    memory.put(key, Entry(current, answer, nbytes, reads, _generations_of(tuple(reads))))
    return answer


def peek(entry, params, tier=None, version=None):
    """The answer a tier ("memory", "redis"; None: either) holds now for these parameters, or MISS.

    Only from that tier, never computed: the benchmark times each tier's hit with it.
    """
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    return _read(entry, params, version, TIERS if tier is None else (tier,))[0]
