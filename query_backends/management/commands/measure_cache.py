"""Measure the answer cache: each tier's hit against the function, how fast a committed write is heard, and
(--memory) a worker's resident memory after many distinct big answers."""

import multiprocessing
import statistics
import time

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from query_backends import generator
from query_backends.benchmark import sample_params
from query_backends.peak_memory import cache_rss
from query_backends.registry import REGISTRY
from rollout.cache import generations


def _median_ms(samples):
    return statistics.median(samples) * 1000


def _wait_for_listener():
    deadline = time.monotonic() + 10
    while generations.listener.generations() is None:
        if time.monotonic() > deadline:
            raise CommandError("the cache listener did not connect")
        time.sleep(0.01)


def _heard_at(table, after, deadline):
    """When this process's listener holds a generation of `table` above `after`."""
    while (generations.listener.generations() or {}).get(table, 0) <= after:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.0002)
    return time.monotonic()


def _child(table, writes, ready, pipe):
    _wait_for_listener()
    ready.set()
    heard = []
    for _ in range(writes):
        before = generations.listener.generations().get(table, 0)
        heard.append(_heard_at(table, before, time.monotonic() + 5))
    pipe.send(heard)


class Command(BaseCommand):
    help = "Time each cache tier's hit against the function (interleaved, rotating parameters) and write propagation."

    def add_arguments(self, parser):
        parser.add_argument("--iterations", type=int, default=200)
        parser.add_argument("--writes", type=int, default=40)
        parser.add_argument(
            "--memory",
            metavar="site-assets:N",
            help="instead: load a site of N assets (removed afterwards), and report a fresh worker's RSS after "
            "--requests cached asset_details calls with distinct mdtz, with the configured byte budget and unbounded",
        )
        parser.add_argument("--requests", type=int, default=50)

    def handle(self, *args, iterations, writes, memory, requests, **options):
        if iterations < 1 or writes < 1 or requests < 1:
            raise CommandError("--iterations, --writes and --requests must be at least 1")
        if memory:
            return self._memory(memory, requests)
        _wait_for_listener()
        self.stdout.write(
            f"{'query':<22}{'function ms':>12}{'memory ms':>11}{'redis ms':>10}{'mem/fn':>9}{'redis/fn':>10}"
        )
        for definition in REGISTRY:
            if definition.cache is None:
                self.stdout.write(f"{definition.name:<22}{'n/a: never cached (reads now())':>52}")
                continue
            self._hits(definition, iterations)
        self._propagation(writes)

    def _hits(self, definition, iterations):
        param_sets = [definition.clean(p) for p in sample_params(definition.name, 50)]
        if not param_sets:
            self.stdout.write(f"{definition.name:<22}{'no parameters in the loaded data':>52}")
            return
        for params in param_sets:
            definition.run_cached("orm", params)
        sides = {
            "function": lambda p: definition.run("pg", p),
            "memory": lambda p: definition.cached_answer("orm", p, tier="memory"),
            "redis": lambda p: definition.cached_answer("orm", p, tier="redis"),
        }
        timings = {side: [] for side in sides}
        for i in range(iterations):
            params = param_sets[i % len(param_sets)]
            for side, run in sides.items():
                started = time.perf_counter()
                found = run(params)
                timings[side].append(time.perf_counter() - started)
                if side != "function" and not found[0]:
                    raise CommandError(f"{definition.name}: the {side} tier lost an entry mid-run (a write?)")
        f, mem, red = (_median_ms(timings[s]) for s in ("function", "memory", "redis"))
        self.stdout.write(f"{definition.name:<22}{f:>12.3f}{mem:>11.4f}{red:>10.3f}{mem / f:>9.3f}{red / f:>10.3f}")

    def _memory(self, spec, requests):
        try:
            kind, _ = generator.parse_shape(spec)
        except ValueError as exc:
            raise CommandError(str(exc).replace("--shape", "--memory")) from None
        if kind != "site-assets":
            raise CommandError(f"--memory: {spec!r} is not site-assets:N")
        ids, _ = generator.load_shape(spec)  # committed: the worker is another process
        unbounded = str(2**40)
        runs = {
            "budget (QUERY_CACHE_MEMORY_BYTES)": {},
            "unbounded (as the 4,096-entry cache)": {
                "QUERY_CACHE_MEMORY_BYTES": unbounded,
                "QUERY_CACHE_MEMORY_ENTRY_BYTES": unbounded,
            },
        }
        try:
            for label, environment in runs.items():
                found = cache_rss(ids["site_id"], requests, environment)
                self.stdout.write(
                    f"{label}: RSS {found['before_kib'] / 1024:,.0f} MiB before, {found['after_kib'] / 1024:,.0f} MiB "
                    f"after {requests} asset_details calls on {spec} (distinct mdtz); kept in process: "
                    f"{found['kept']} answers, {found['kept_bytes'] / 2**20:,.1f} MiB"
                )
        finally:
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                for table, first, last in ids["id_ranges"]:  # children first: the shape's rows, and only them
                    cursor.execute(f"DELETE FROM {table} WHERE id BETWEEN %s AND %s", [first, last])
                cursor.execute("VACUUM ANALYZE asset, questionset, bt")

    def _propagation(self, writes):
        """A no-op UPDATE committed through plain psycopg; when this process and a forked one hear of it."""
        table = "capability"
        params = {k: v for k, v in generations.listener_params().items() if k not in ("application_name",)}
        connections.close_all()  # the child must not share this process's connections
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(table, writes, ready, sender))
        child.start()
        try:
            if not ready.wait(15):
                raise CommandError("the forked process's listener did not connect")
            committed_at, here = [], []
            with psycopg.connect(**params) as writer:
                for _ in range(writes):
                    before = generations.listener.generations().get(table, 0)
                    writer.execute(f"UPDATE {table} SET mdtz = mdtz WHERE id = -1")
                    committed_at.append(time.monotonic())  # autocommit: returned once committed
                    here.append(_heard_at(table, before, time.monotonic() + 5))
                    time.sleep(0.02)
            there = receiver.recv()
        finally:
            child.join(10)
        for name, heard in (("this process", here), ("forked process", there)):
            lags = [(h - c) * 1000 for h, c in zip(heard, committed_at) if h is not None]
            missed = sum(h is None for h in heard)
            self.stdout.write(
                f"write heard by {name}: median {statistics.median(lags):.2f} ms, "
                f"max {max(lags):.2f} ms over {len(lags)} writes" + (f", {missed} not within 5 s" if missed else "")
            )
        connections[DEFAULT_DB_ALIAS].close()
