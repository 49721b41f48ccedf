"""Counters and latency samples per query and backend, as per-minute rollups in PostgreSQL.

Calls add to an in-process accumulator and never wait on anything else. One
writer thread per process moves it into `MetricMinute` rows every
METRICS_FLUSH_SECONDS (an upsert that adds to what other processes wrote), so
every process — and the next run — reads the same numbers, with or without
Redis. If the database is unreachable the counts stay pending, per minute, and
reach it when it is back (latency samples of a failed flush are dropped); the
outage is logged once when it starts and once when it ends. Rows older than
METRICS_RETENTION_HOURS are purged by the writer and by `rollout purge-metrics`.

All database work happens on the writer thread's own connection, so it is
committed at once and never runs inside a caller's transaction.
"""

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import Future

from django.db import connection

from rollout.conf import get_setting
from rollout.outage import Outage

logger = logging.getLogger(__name__)
COUNTERS = (
    "calls",
    "errors",
    "fallbacks",
    "rescues",
    "comparisons",
    "matches",
    "discrepancies",
    "control_errors",
    "noise",
    "infrastructure",
    "drops",
    "cache_hits",
    "cache_misses",
    "record_failures",
    "guard_trips",
    "tenant_filtered",
)
# The application's own runs of a control (the function), counted under the control's backend wherever rollout
# runs it: retirement readiness subtracts them from PostgreSQL's count to see the calls made by anyone else.
FUNCTION_CALLS = "function_calls"
SAMPLES_PER_MINUTE = 200  # latency samples kept per minute, query and backend
SNAPSHOT_LATENCY_MINUTES = 60  # snapshot() percentiles cover the last hour
PENDING_MINUTES = 120  # at most this many unflushed minutes are kept through an outage
PURGE_EVERY_SECONDS = 600
TABLE = "rollout_metricminute"

_UPSERT = f"""
INSERT INTO {TABLE} AS m (minute, query, backend, counts, samples) VALUES %(rows)s
ON CONFLICT (minute, query, backend) DO UPDATE SET
  counts = (SELECT coalesce(jsonb_object_agg(key, total), '{{}}'::jsonb) FROM (
              SELECT key, sum(value::bigint) AS total FROM (
                SELECT * FROM jsonb_each_text(m.counts) UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.counts)
              ) AS added GROUP BY key) AS summed),
  samples = (m.samples || EXCLUDED.samples)[1:{SAMPLES_PER_MINUTE}]
"""


class _Writer:
    """A daemon thread running submitted work in order. Unlike ThreadPoolExecutor it still runs during atexit,
    so the last counts of a process can be flushed by its shutdown hook."""

    def __init__(self):
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._run, name="rollout-metrics-writer", daemon=True).start()

    def submit(self, work, *args):
        future = Future()
        self._jobs.put((future, work, args))
        return future

    def _run(self):
        while True:
            future, work, args = self._jobs.get()
            try:
                future.set_result(work(*args))
            except BaseException as exc:  # noqa: BLE001 — handed to whoever waits on the future
                future.set_exception(exc)


def _upsert(cursor, counts, samples):
    """Add {(minute, query, backend): {counter: n}} and their latency samples to the rollups, in one statement.

    Rows are taken in one order in every process and transaction, so concurrent upserts never deadlock."""
    keys = sorted(set(counts) | set(samples))
    params = []
    for key in keys:
        params += [*key, json.dumps(dict(counts.get(key, {}))), samples.get(key, [])]
    rows = ", ".join(["(%s, %s, %s, %s::jsonb, %s::double precision[])"] * len(keys))
    cursor.execute(_UPSERT.replace("%(rows)s", rows), params)


_recorded_in = None  # see recorded_in_minute


def current_minute():
    return int(time.time() // 60)


def _counting_minute():
    return int(time.time() // 60) if _recorded_in is None else _recorded_in


@contextlib.contextmanager
def recorded_in_minute(minute):
    """Count what this process does inside in the given minute (`current_minute()` numbering): the demo lays
    each of its stages, run seconds apart, in a minute of its own so the dashboard shows them side by side.
    Process-wide (comparisons are counted on other threads); nothing else uses it."""
    global _recorded_in
    previous, _recorded_in = _recorded_in, minute
    try:
        yield
    finally:
        _recorded_in = previous


def _numbers(rows):
    """{(query, backend): {counter: n}} from (query, backend, counter, n) rows."""
    result = defaultdict(dict)
    for query, backend, name, n in rows:
        result[(query, backend)][name] = int(n)
    return result


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._pending = defaultdict(Counter)  # (minute, query, backend) -> counts
        self._samples = defaultdict(list)  # (minute, query, backend) -> seconds
        self._served = deque()  # served calls as they came, counted into _pending when taken
        self._pid = None
        self._writer = None
        self._purged_at = 0.0
        self.outage = Outage("the metrics database", logger)

    # -- the request path: in-process only ------------------------------------------------------------

    def increment(self, query, backend, name, n=1):
        self._ensure_writer()
        with self._lock:
            self._pending[(_counting_minute(), query, backend)][name] += n

    def served(self, query, backend, seconds, raised=False, function_calls=0):
        """One served call (the router's every call): its calls (and errors, and the runs of the function it
        made) count, its duration is a latency sample and adds to served_us (the shadow budget's base).

        Only appended here — a deque's append needs no lock — and counted when the writer (or a reader) takes
        the pending counts: the request path spends the least it can."""
        if self._pid != os.getpid():
            self._ensure_writer()
        self._served.append((_recorded_in, time.time(), query, backend, seconds, raised, function_calls))

    def _count_served(self):
        """Move the served calls appended so far into the pending counts and samples (under the lock)."""
        served = self._served
        while served:
            recorded_in, at, query, backend, seconds, raised, function_calls = served.popleft()
            key = (int(at // 60) if recorded_in is None else recorded_in, query, backend)
            counts = self._pending[key]
            counts["calls"] += 1
            counts["served_us"] += round(seconds * 1e6)
            if raised:
                counts["errors"] += 1
            if function_calls:
                counts[FUNCTION_CALLS] += function_calls
            samples = self._samples[key]
            if len(samples) < SAMPLES_PER_MINUTE:
                samples.append(seconds)

    # -- the writer thread ---------------------------------------------------------------------------

    def _ensure_writer(self):
        """One writer thread per process (re-created after a fork) and a ticker that flushes through it."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._writer = _Writer()
            self._pid = os.getpid()
            # A fork's copies are the parent's.
            self._pending, self._samples, self._served = defaultdict(Counter), defaultdict(list), deque()

        def tick():
            while True:
                time.sleep(get_setting("METRICS_FLUSH_SECONDS"))
                self._writer.submit(self._write_pending)

        threading.Thread(target=tick, name="rollout-metrics-ticker", daemon=True).start()

    def _on_writer(self, work, timeout=30):
        """Run work(cursor) on the writer's connection and return its result."""
        self._ensure_writer()
        return self._writer.submit(self._with_cursor, work).result(timeout=timeout)

    @staticmethod
    def _with_cursor(work):
        try:
            with connection.cursor() as cursor:
                return work(cursor)
        finally:
            connection.close()  # back to the pool; a broken connection is never reused

    def _take_pending(self):
        with self._lock:
            self._count_served()
            pending, samples = self._pending, self._samples
            self._pending, self._samples = defaultdict(Counter), defaultdict(list)
        return pending, samples

    def _write_pending(self):
        pending, samples = self._take_pending()
        if not pending and not samples:
            return
        try:
            self._with_cursor(lambda cursor: _upsert(cursor, pending, samples))
        except Exception as exc:  # noqa: BLE001 — metrics never fail anyone; the counts wait for the next flush
            self.outage.failed(exc)
            self._keep(pending)
            return
        self.outage.succeeded()
        if time.monotonic() - self._purged_at >= PURGE_EVERY_SECONDS:
            self._purged_at = time.monotonic()
            hours = get_setting("METRICS_RETENTION_HOURS")
            try:
                self._with_cursor(lambda cursor: self._delete_older(cursor, hours))
            except Exception as exc:  # noqa: BLE001
                self.outage.failed(exc)

    @staticmethod
    def add_now(counts):
        """Add {(query, backend, counter): n} to this minute's rollups on the caller's connection and transaction
        (the publisher's: counted exactly when its records are written, and never again on a redelivery)."""
        if not counts:
            return
        by_key = defaultdict(dict)
        for (query, backend, name), n in counts.items():
            by_key[(_counting_minute(), query, backend)][name] = n
        with connection.cursor() as cursor:
            _upsert(cursor, by_key, {})

    def _keep(self, pending):
        with self._lock:
            for key, counts in pending.items():
                self._pending[key].update(counts)
            minutes = sorted({key[0] for key in self._pending})
            if len(minutes) > PENDING_MINUTES:
                cut = minutes[-PENDING_MINUTES]
                self._pending = defaultdict(Counter, {k: v for k, v in self._pending.items() if k[0] >= cut})

    @staticmethod
    def _delete_older(cursor, hours):
        cursor.execute(f"DELETE FROM {TABLE} WHERE minute < %s", [current_minute() - int(hours * 60)])
        return cursor.rowcount

    # -- readers ---------------------------------------------------------------------------------------

    def flush(self, timeout=30):
        """Write what this process counted so far (readers call it first, so they see their own calls)."""
        self._ensure_writer()
        self._writer.submit(self._write_pending).result(timeout=timeout)

    def flush_if_counting(self, timeout=30):
        """flush(), where this process has counted or read anything: a process that never did has no writer,
        and starts none at its exit."""
        if self._pid == os.getpid():
            self.flush(timeout)

    def snapshot(self):
        """{(query, backend): {counter: n, ..., "p50", "p95", "p99", "samples"}} across processes.

        Counters add up every retained minute; percentiles cover the last SNAPSHOT_LATENCY_MINUTES.
        """
        self.flush()
        since = current_minute() - SNAPSHOT_LATENCY_MINUTES + 1

        def read(cursor):
            cursor.execute(
                f"SELECT query, backend, key, sum(value::bigint) FROM {TABLE}, jsonb_each_text(counts) GROUP BY 1, 2, 3"
            )
            counts = _numbers(cursor.fetchall())
            cursor.execute(
                f"""SELECT query, backend, count(*), percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY s)
                    FROM {TABLE}, unnest(samples) AS s WHERE minute >= %s GROUP BY 1, 2""",
                [since],
            )
            return counts, {(q, b): (n, p) for q, b, n, p in cursor.fetchall()}

        counts, latencies = self._read(read, ({}, {}))
        result = {}
        for key in set(counts) | set(latencies):
            n, (p50, p95, p99) = latencies.get(key, (0, (None, None, None)))
            row = {name: counts.get(key, {}).get(name, 0) for name in COUNTERS}
            row.update(samples=n, p50=p50, p95=p95, p99=p99)
            result[key] = row
        return result

    def totals(self, minutes_back):
        """{(query, backend): {counter: n}} over the last minutes, from every process (not flushing this one's)."""
        since = current_minute() - minutes_back + 1

        def read(cursor):
            cursor.execute(
                f"""SELECT query, backend, key, sum(value::bigint) FROM {TABLE}, jsonb_each_text(counts)
                    WHERE minute >= %s GROUP BY 1, 2, 3""",
                [since],
            )
            return _numbers(cursor.fetchall())

        return self._read(read, {})

    def series(self, minutes_back):
        """[(minute, {(query, backend): {counter: n, "p50", "p95"}})] for the last minutes, oldest first."""
        self.flush()
        now = current_minute()
        minutes = list(range(now - minutes_back + 1, now + 1))

        def read(cursor):
            cursor.execute(
                f"""SELECT minute, query, backend, counts,
                           (SELECT percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s) FROM unnest(samples) s)
                    FROM {TABLE} WHERE minute >= %s ORDER BY minute""",
                [minutes[0]],
            )
            return cursor.fetchall()

        by_minute = defaultdict(dict)
        for minute, query, backend, counts, percentiles in self._read(read, []):
            counts = json.loads(counts) if isinstance(counts, str) else counts
            p50, p95 = percentiles or (None, None)
            by_minute[minute][(query, backend)] = {**{k: int(v) for k, v in counts.items()}, "p50": p50, "p95": p95}
        return [(minute, by_minute.get(minute, {})) for minute in minutes]

    def totals_since(self, query, since_minute):
        """{backend: {counter: n, …}} of one query from a minute on (minutes since the epoch), summed over every
        process; every counter the rollups hold, the per-cohort ones (`comparisons@site=3`) too.

        Read on the caller's connection (the autopilot's): it sees what its own transaction counted, and a
        failure is the caller's error, not an empty answer that would read as "no evidence"."""
        self.flush()
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT backend, key, sum(value::bigint) FROM {TABLE}, jsonb_each_text(counts)
                    WHERE query = %s AND minute >= %s GROUP BY 1, 2""",
                [query, since_minute],
            )
            rows = cursor.fetchall()
        result = defaultdict(dict)
        for backend, name, n in rows:
            result[backend][name] = int(n)
        return result

    def _read(self, work, empty):
        try:
            result = self._on_writer(work)
        except Exception as exc:  # noqa: BLE001 — a reader gets no numbers, never an error
            self.outage.failed(exc)
            return empty
        self.outage.succeeded()
        return result

    def purge(self, hours=None):
        """Delete the rollups older than `hours` (default METRICS_RETENTION_HOURS); returns how many went."""
        hours = get_setting("METRICS_RETENTION_HOURS") if hours is None else hours
        return self._on_writer(lambda cursor: self._delete_older(cursor, hours))

    def forget_backend(self, backend):
        """Delete every rollup of one backend name (a benchmark's own, taking back what it counted)."""
        return self._on_writer(lambda cursor: cursor.execute(f"DELETE FROM {TABLE} WHERE backend = %s", [backend]))

    def forget_minute(self, minute):
        """Delete every rollup of one minute (a benchmark's scratch minute, taking back what it counted)."""
        return self._on_writer(lambda cursor: cursor.execute(f"DELETE FROM {TABLE} WHERE minute = %s", [minute]))

    @staticmethod
    def since(before, after):
        """Counter totals added between two snapshots, summed over queries and backends."""
        return {
            name: sum(row[name] for row in after.values()) - sum(row[name] for row in before.values())
            for name in COUNTERS
        }

    def reset(self):
        """Forget every count, here and in the database (tests)."""
        self._take_pending()
        self._on_writer(lambda cursor: cursor.execute(f"DELETE FROM {TABLE}"))


metrics = Metrics()
