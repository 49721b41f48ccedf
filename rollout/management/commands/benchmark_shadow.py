"""Measure what shadow mode costs and how fast its records are written (docs/benchmarks.md).

records  — queue N recorded results (rescues of one query, so no backend runs: it is the record path that is
           measured) and time until the database holds them all; with a broker, the workers must be running.
latency  — GET one URL at a fixed offered rate (open loop: each request's latency counts from the time it was due,
           at most --concurrency in flight) and report p50/p95/p99; or with --clients, as fast as that many
           clients can (throughput at saturation).
"""

import dataclasses
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.core.management.base import BaseCommand, CommandError

from rollout.experiments import get_experiment, registry
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, RecordedComparison
from rollout.routing.router import decide
from rollout.shadow import job
from rollout.shadow.observation import Observation, ReportedError
from rollout.shadow.queue import background


class Command(BaseCommand):
    help = "Benchmark shadow mode: records per second, or user latency at a fixed rate / throughput at saturation."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="mode", required=True)
        records = sub.add_parser("records", help="records per second through the configured background")
        records.add_argument("--count", type=int, default=5000)
        records.add_argument("--query", help="the query the records are about (default: the first registered)")
        sample = sub.add_parser("sample", help="what sampling one call costs the request path (build a job, queue it)")
        sample.add_argument("--count", type=int, default=2000)
        sample.add_argument("query")
        sample.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="the call's parameters")
        latency = sub.add_parser("latency", help="latency of one URL at a fixed rate, or throughput with --clients")
        latency.add_argument("url")
        latency.add_argument("--token", default="", help="an API token (rollout token issue USER)")
        latency.add_argument("--rate", type=float, default=100.0, help="requests per second offered")
        latency.add_argument("--seconds", type=float, default=20.0)
        latency.add_argument("--clients", type=int, help="closed loop: this many clients, as fast as they can")
        latency.add_argument("--concurrency", type=int, default=64, help="open loop: at most this many in flight")

    def handle(self, mode, **options):
        if mode == "records":
            self.records(options["count"], options["query"] or registry().names()[0])
        elif mode == "sample":
            self.sample(options["count"], options["query"], options["param"])
        else:
            self.latency(options)

    def records(self, count, query):
        if count < 1:
            raise CommandError("--count: must be at least 1")
        experiment = get_experiment(query)
        # This run's own marks, so that it can take back all it wrote: an error kind no real call has (its
        # own discrepancy fingerprint) and a backend name no query has (its own metric rows).
        run = f"bench-{uuid.uuid4().hex[:12]}"  # a backend name fits in 20 characters
        control = Observation(experiment.control, exception=ReportedError(run, f"{run}: the control failed"))
        candidate = Observation(experiment.candidate, value=[], duration=0.001)
        decision = decide(query, None, experiment)[0]
        jobs = [
            dataclasses.replace(
                job.Job.of(
                    job.RESCUE,
                    experiment,
                    decision,
                    {},
                    None,
                    experiment.candidate,
                    control=control,
                    candidate=candidate,
                ),
                candidate_backend=run,
            )
            for _ in range(count)
        ]
        recorded = Discrepancy.objects.filter(query=query, kind="rescued", examples__control_error__contains=run)
        try:
            started = time.perf_counter()
            for rescue in jobs:
                while not background.submit(rescue):
                    time.sleep(0.001)  # the local queue is full: wait for room rather than count a drop
            background.drain()
            waited_for, seen = time.monotonic(), 0
            while seen < count:
                time.sleep(0.05)
                now = recorded.values_list("occurrences", flat=True).first() or 0
                if now > seen:
                    waited_for, seen = time.monotonic(), now
                elif time.monotonic() - waited_for > 60:
                    raise CommandError(f"{seen} of {count} records written, none for 60 s: are the workers running?")
            elapsed = time.perf_counter() - started
        finally:
            self._take_back(run, query, [j.id for j in jobs])
        self.stdout.write(
            f"{count} records of {query} via {background.mode}: {elapsed:.2f} s, {count / elapsed:,.0f} records/s"
        )

    @staticmethod
    def _take_back(run, query, comparison_ids):
        """Delete what the records benchmark wrote: its discrepancy, its claims, its metrics."""
        time.sleep(1.5)  # the last metrics writes of this process land first
        metrics.flush()
        Discrepancy.objects.filter(query=query, examples__control_error__contains=run).distinct().delete()
        RecordedComparison.objects.filter(comparison_id__in=comparison_ids).delete()
        metrics.forget_backend(run)

    def sample(self, count, query, pairs):
        """Time job.sample for one served answer of the query."""
        if any("=" not in pair for pair in pairs):
            raise CommandError("--param: give NAME=VALUE")
        try:
            experiment = get_experiment(query)
            params = experiment.clean(dict(pair.split("=", 1) for pair in pairs), parse=True)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        decision = dataclasses.replace(decide(query, None, experiment)[0], shadow=True)
        served = Observation.of(decision.backend, experiment.run, decision.backend, params)
        timings = []
        for i in range(count):
            started = time.perf_counter()
            job.sample(experiment, decision, params, served, None)
            timings.append(time.perf_counter() - started)
            if i % 500 == 499:
                background.drain()  # keep the queue from filling: a full queue would time a drop instead
        background.drain()
        ordered = sorted(timings)
        self.stdout.write(
            f"{count} samples of {query}: median {statistics.median(timings) * 1e6:.1f} µs, "
            f"p95 {ordered[round(0.95 * (count - 1))] * 1e6:.1f} µs"
        )

    def latency(self, options):
        """Open loop: request i is due at start + i / rate and its latency counts from then, so a client that
        falls behind shows as latency, not as a slower offered rate; at most --concurrency requests in flight
        (beyond that they wait, and their wait counts). Closed loop with --clients."""
        headers = {"Authorization": f"Token {options['token']}"} if options["token"] else {}
        timings, errors, lock = [], [], threading.Lock()

        def get(due):
            try:
                with urllib.request.urlopen(urllib.request.Request(options["url"], headers=headers), timeout=30) as r:
                    r.read()
                    ok = r.status == 200
            except Exception as exc:  # noqa: BLE001 — a failed request is counted, whatever failed
                ok = exc
            with lock:
                (timings if ok is True else errors).append(time.perf_counter() - due)

        started = time.perf_counter()
        deadline = started + options["seconds"]
        if options["clients"]:

            def client():
                while time.perf_counter() < deadline:
                    get(time.perf_counter())

            threads = [threading.Thread(target=client) for _ in range(options["clients"])]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            count = int(options["seconds"] * options["rate"])
            with ThreadPoolExecutor(max_workers=options["concurrency"]) as pool:
                for i in range(count):
                    due = started + i / options["rate"]
                    time.sleep(max(0.0, due - time.perf_counter()))
                    pool.submit(get, due)
        if not timings:
            raise CommandError(f"no successful request ({len(errors)} failed)")
        ordered = sorted(timings)

        def ms(q):
            return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

        self.stdout.write(
            f"{len(timings)} ok, {len(errors)} failed in {options['seconds']:.0f} s "
            f"({len(timings) / options['seconds']:.1f} req/s): p50 {ms(0.5):.2f} ms, p95 {ms(0.95):.2f} ms, "
            f"p99 {ms(0.99):.2f} ms"
        )
