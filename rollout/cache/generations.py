"""This process's copy of the watched tables' generations, kept current by one LISTENing connection."""

import logging
import os
import threading
import time

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

from rollout.cache.memory import MemoryTier
from rollout.cache.triggers import CHANNEL, WATCHED_GENERATIONS
from rollout.conf import get_setting

logger = logging.getLogger(__name__)


class GenerationListener:
    def __init__(self):
        self._start_lock = threading.Lock()
        self._thread = None
        self._first_attempt = threading.Event()
        self._stopping = threading.Event()
        # {watched table: generation}, None while down; trusted until `known_until` (monotonic), a liveness
        # bound renewed by every read. Public for the hit path (answers.py), which reads both without a call.
        self.known = None
        self.known_until = 0.0
        self.backend_pid = None  # the listening connection's server pid, for operators and tests
        self._lost = False  # a lost connection was logged: its return is news too
        self._silent_for_at_most = 3 * _heartbeat()  # kept here: a refresh must not pay for a settings lookup
        self.memory = MemoryTier(get_setting("CACHE_MEMORY_BYTES"), get_setting("CACHE_MEMORY_ENTRY_BYTES"))

    def generations(self):
        """{table: generation} of every watched table, or None when they cannot be trusted (down or silent)."""
        if self._thread is None and not self._stopping.is_set():
            self._start()
        known = self.known
        return known if known is not None and time.monotonic() <= self.known_until else None

    def _start(self):
        with self._start_lock:
            if self._thread is None:
                params = listener_params()
                self._thread = threading.Thread(target=self._run, args=(params,), name="query-cache-listener")
                self._thread.daemon = True
                self._thread.start()
        self._first_attempt.wait(get_setting("CACHE_LISTENER_CONNECT_SECONDS"))

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
        # A first connection is routine (DEBUG: no line in the middle of a command's output); a return is news.
        logger.log(
            logging.INFO if self._lost else logging.DEBUG,
            "query cache listener %s (backend pid %s)",
            "reconnected: the cache serves again" if self._lost else "connected",
            self.backend_pid,
        )
        self._lost = False
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
        # Only tables whose trigger fires in every session have a generation: a trigger dropped or disabled
        # makes its table unwatched at the next heartbeat, and what reads it is no longer cached.
        self.known = dict(conn.execute(WATCHED_GENERATIONS).fetchall())
        self.known_until = time.monotonic() + self._silent_for_at_most

    def _down(self, exc):
        if self.known is not None and exc is not None:
            logger.warning("query cache listener lost its connection (%s): the cache is bypassed", exc)
            self._lost = True
        self.known = None
        self.backend_pid = None
        self.memory.clear()


def _heartbeat():
    return get_setting("CACHE_LISTENER_HEARTBEAT_SECONDS")


def listener_params():
    """The default database's connection settings, for a plain autocommit psycopg connection."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    heartbeat = _heartbeat()
    return {
        **params,
        "autocommit": True,
        "application_name": f"query_cache_listener:{os.getpid()}",
        "connect_timeout": max(1, round(get_setting("CACHE_LISTENER_CONNECT_SECONDS"))),
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
