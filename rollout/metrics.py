"""Counters and latency samples per query and backend, shared across processes through Redis when configured.

Calls add to an in-process accumulator; it reaches the store at most every
METRICS_FLUSH_SECONDS (one pipelined round trip), so the request path never
waits on Redis more than once a second — and a Redis failure keeps the counts
pending for the next flush instead of raising.
"""

import logging
import os
import threading
import time
from collections import Counter, defaultdict, deque

from django.conf import settings

from rollout.conf import get_setting

logger = logging.getLogger(__name__)
COUNTERS = (
    "calls",
    "errors",
    "fallbacks",
    "comparisons",
    "matches",
    "discrepancies",
    "noise",
    "drops",
    "cache_hits",
    "cache_misses",
    "record_failures",
    "guard_trips",
)
PREFIX = "rollout:metrics"
SERIES_SAMPLES = 200  # latency samples kept per minute, query and backend
SERIES_TTL = 25 * 3600


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


class LocalStore:
    def __init__(self):
        self.clear()

    def push(self, counters, latencies):
        for key, counts in counters.items():
            self.counters[key].update(counts)
        for key, values in latencies.items():
            self.latencies[key].extend(values)

    def read(self):
        keys = set(self.counters) | set(self.latencies)
        return {key: (dict(self.counters[key]), list(self.latencies[key])) for key in keys}

    def clear(self):
        self.counters = defaultdict(Counter)
        self.latencies = defaultdict(lambda: deque(maxlen=get_setting("LATENCY_SAMPLES")))
        self.windows = {}
        self.series = {}

    def push_series(self, minute, counters, latencies):
        bucket = self.series.setdefault(minute, (defaultdict(Counter), defaultdict(list)))
        for key, counts in counters.items():
            bucket[0][key].update(counts)
        for key, values in latencies.items():
            bucket[1][key].extend(values[:SERIES_SAMPLES])

    def read_series(self, minutes):
        return {
            m: ({k: dict(c) for k, c in self.series[m][0].items()}, dict(self.series[m][1]))
            for m in minutes
            if m in self.series
        }

    def push_window(self, key, entry, size):
        window = self.windows.get(key)
        if window is None or window.maxlen != size:
            window = self.windows[key] = deque(window or (), maxlen=size)
        window.appendleft(entry)
        return list(window)

    def clear_window(self, key):
        self.windows.pop(key, None)


class RedisStore:
    def __init__(self):
        from django_redis import get_redis_connection

        self.redis = get_redis_connection("default")

    def push(self, counters, latencies):
        pipe = self.redis.pipeline(transaction=False)
        for (query, backend), counts in counters.items():
            pipe.sadd(f"{PREFIX}:index", f"{query}|{backend}")
            for name, n in counts.items():
                pipe.hincrby(f"{PREFIX}:{query}|{backend}", name, n)
        for (query, backend), values in latencies.items():
            pipe.sadd(f"{PREFIX}:index", f"{query}|{backend}")
            pipe.lpush(f"{PREFIX}:latency:{query}|{backend}", *values)
            pipe.ltrim(f"{PREFIX}:latency:{query}|{backend}", 0, get_setting("LATENCY_SAMPLES") - 1)
        pipe.execute()

    def read(self):
        members = sorted(m.decode() for m in self.redis.smembers(f"{PREFIX}:index"))
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.hgetall(f"{PREFIX}:{member}")
            pipe.lrange(f"{PREFIX}:latency:{member}", 0, -1)
        replies = pipe.execute()
        result = {}
        for i, member in enumerate(members):
            counts, samples = replies[2 * i], replies[2 * i + 1]
            result[tuple(member.split("|", 1))] = (
                {k.decode(): int(v) for k, v in counts.items()},
                [float(v) for v in samples],
            )
        return result

    def clear(self):
        keys = list(self.redis.scan_iter(f"{PREFIX}:*"))
        if keys:
            self.redis.delete(*keys)

    def push_series(self, minute, counters, latencies):
        pipe = self.redis.pipeline(transaction=False)
        counts_key, samples_key = f"{PREFIX}:ts:{minute}", f"{PREFIX}:ts:{minute}:latency"
        for (query, backend), counts in counters.items():
            for name, n in counts.items():
                pipe.hincrby(counts_key, f"{query}|{backend}|{name}", n)
        for (query, backend), values in latencies.items():
            key = f"{samples_key}:{query}|{backend}"
            pipe.lpush(key, *values[:SERIES_SAMPLES])
            pipe.ltrim(key, 0, SERIES_SAMPLES - 1)
            pipe.expire(key, SERIES_TTL)
            pipe.sadd(f"{samples_key}:index", f"{query}|{backend}")
        pipe.expire(counts_key, SERIES_TTL)
        pipe.expire(f"{samples_key}:index", SERIES_TTL)
        pipe.execute()

    def read_series(self, minutes):
        pipe = self.redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(f"{PREFIX}:ts:{minute}")
            pipe.smembers(f"{PREFIX}:ts:{minute}:latency:index")
        replies = pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        wanted = []
        for i, minute in enumerate(minutes):
            for member in replies[2 * i + 1]:
                wanted.append((minute, member.decode()))
                pipe.lrange(f"{PREFIX}:ts:{minute}:latency:{member.decode()}", 0, -1)
        samples = pipe.execute()
        result = {}
        for i, minute in enumerate(minutes):
            counters = defaultdict(dict)
            for field, n in replies[2 * i].items():
                query, backend, name = field.decode().rsplit("|", 2)
                counters[(query, backend)][name] = int(n)
            result[minute] = (dict(counters), {})
        for (minute, member), values in zip(wanted, samples):
            result[minute][1][tuple(member.split("|", 1))] = [float(v) for v in values]
        return result

    def push_window(self, key, entry, size):
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(f"{PREFIX}:window:{key}", entry)
        pipe.ltrim(f"{PREFIX}:window:{key}", 0, size - 1)
        pipe.lrange(f"{PREFIX}:window:{key}", 0, -1)
        return [e.decode() for e in pipe.execute()[-1]]

    def clear_window(self, key):
        self.redis.delete(f"{PREFIX}:window:{key}")


class Metrics:
    def __init__(self):
        self._store = None
        self._lock = threading.Lock()
        self._counters = defaultdict(Counter)
        self._latencies = defaultdict(list)
        self._flushed_at = time.monotonic()
        self._flusher_pid = None

    def _ensure_flusher(self):
        """A daemon thread per process, so counts reach the store even when calls stop coming."""
        if self._flusher_pid == os.getpid():
            return
        self._flusher_pid = os.getpid()

        def run():
            while True:
                time.sleep(get_setting("METRICS_FLUSH_SECONDS"))
                self.flush()

        threading.Thread(target=run, name="rollout-metrics-flusher", daemon=True).start()

    @property
    def store(self):
        if self._store is None:
            self._store = RedisStore() if getattr(settings, "REDIS_CONFIGURED", False) else LocalStore()
        return self._store

    def increment(self, query, backend, name, n=1):
        with self._lock:
            self._counters[(query, backend)][name] += n
        self._maybe_flush()

    def observe(self, query, backend, seconds):
        with self._lock:
            samples = self._latencies[(query, backend)]
            if len(samples) < get_setting("LATENCY_SAMPLES"):
                samples.append(seconds)
        self._maybe_flush()

    def _maybe_flush(self):
        self._ensure_flusher()
        if time.monotonic() - self._flushed_at >= get_setting("METRICS_FLUSH_SECONDS"):
            self.flush()

    def flush(self):
        with self._lock:
            counters, latencies = self._counters, self._latencies
            self._counters, self._latencies = defaultdict(Counter), defaultdict(list)
            self._flushed_at = time.monotonic()
        if not counters and not latencies:
            return
        try:
            self.store.push(counters, latencies)
            self.store.push_series(int(time.time() // 60), counters, latencies)
        except Exception:
            logger.warning("metrics store unreachable; keeping counts for the next flush", exc_info=True)
            with self._lock:
                for key, counts in counters.items():
                    self._counters[key].update(counts)

    def snapshot(self):
        """{(query, backend): {counter: n, ..., "p50", "p95", "p99", "samples"}} across processes."""
        self.flush()
        try:
            raw = self.store.read()
        except Exception:
            logger.warning("metrics store unreachable; no snapshot", exc_info=True)
            return {}
        result = {}
        for key, (counts, samples) in raw.items():
            ordered = sorted(samples)
            row = {name: counts.get(name, 0) for name in COUNTERS}
            row.update(
                samples=len(ordered),
                p50=percentile(ordered, 0.5),
                p95=percentile(ordered, 0.95),
                p99=percentile(ordered, 0.99),
            )
            result[key] = row
        return result

    def series(self, minutes_back):
        """[(minute, {(query, backend): {counter: n, "p50", "p95"}})] for the last minutes, oldest first."""
        self.flush()
        now = int(time.time() // 60)
        minutes = list(range(now - minutes_back + 1, now + 1))
        try:
            raw = self.store.read_series(minutes)
        except Exception:
            logger.warning("metrics store unreachable; no series", exc_info=True)
            raw = {}
        result = []
        for minute in minutes:
            counters, samples = raw.get(minute, ({}, {}))
            row = {}
            for key in set(counters) | set(samples):
                ordered = sorted(samples.get(key, ()))
                row[key] = {**counters.get(key, {}), "p50": percentile(ordered, 0.5), "p95": percentile(ordered, 0.95)}
            result.append((minute, row))
        return result

    def push_window(self, key, entry, size):
        """Add an entry to a rolling window shared by every process; returns the window, newest first."""
        with self._lock:
            return self.store.push_window(key, entry, size)

    def clear_window(self, key):
        with self._lock:
            self.store.clear_window(key)

    @staticmethod
    def since(before, after):
        """Counter totals added between two snapshots, summed over queries and backends."""
        return {
            name: sum(row[name] for row in after.values()) - sum(row[name] for row in before.values())
            for name in COUNTERS
        }

    def reset(self):
        with self._lock:
            self._counters, self._latencies = defaultdict(Counter), defaultdict(list)
        self.store.clear()


metrics = Metrics()
