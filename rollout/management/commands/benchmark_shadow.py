"""Measure what shadow mode costs and how fast its records are written (docs/benchmarks.md).

records  — queue N recorded results (rescues of one query, so no backend runs: it is the record path that is
           measured) and time until the database holds them all; with a broker, the workers must be running.
latency  — GET URLs in turn at a fixed offered rate (open loop: each request's latency counts from the time it
           was due, at most --concurrency in flight) and report p50/p95/p99; with --alternate QUERY, in windows
           of shadow 0 % and 100 % for that query, ABBA, and the medians of the windows' percentiles; or with
           --clients, as fast as that many clients can (throughput at saturation).
"""

import dataclasses
import http.client
import statistics
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from rollout.experiments import flag_name, get_experiment, registry
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, RecordedCall, RecordedComparison
from rollout.routing.benchmark import taken_back
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
        latency.add_argument("url", nargs="*", help="one or more URLs, requested in turn")
        latency.add_argument("--urls-from", metavar="FILE", help="more URLs, one a line (rotating parameter sets)")
        latency.add_argument("--token", default="", help="an API token (rollout token issue USER)")
        latency.add_argument("--rate", type=float, default=100.0, help="requests per second offered")
        latency.add_argument("--seconds", type=float, default=20.0, help="per window")
        latency.add_argument("--clients", type=int, help="closed loop: this many clients, as fast as they can")
        latency.add_argument("--concurrency", type=int, default=64, help="open loop: at most this many in flight")
        latency.add_argument(
            "--alternate", metavar="QUERY", help="windows of shadow 0 %% and 100 %% for this query, in ABBA order"
        )
        latency.add_argument("--rounds", type=int, default=3, help="with --alternate: rounds of two windows")
        latency.add_argument("--settle", type=float, default=2.5, help="with --alternate: seconds after each switch")
        latency.add_argument(
            "--warmup",
            type=float,
            default=0.0,
            help="with --alternate: first a window this long at shadow 100 %%, printed and not counted (the budget "
            "measures what comparisons cost before it caps them)",
        )

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
        began = timezone.now()
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
            self._take_back(run, query, [j.id for j in jobs], began)
        self.stdout.write(
            f"{count} records of {query} via {background.mode}: {elapsed:.2f} s, {count / elapsed:,.0f} records/s"
        )

    @staticmethod
    def _take_back(run, query, comparison_ids, began):
        """Delete what the records benchmark wrote: its discrepancy, its claims, its metrics, the parameters it
        recorded as a real call (its jobs' empty ones, which validation would take for a case)."""
        time.sleep(1.5)  # the last metrics writes of this process land first
        metrics.flush()
        RecordedCall.objects.filter(query=query, params={}, seen_at__gte=began).delete()
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
        with taken_back(query):  # the sampled jobs are judged for real: none of it stays as the query's evidence
            for i in range(count):
                started = time.perf_counter()
                job.sample(experiment, decision, params, served, None)
                timings.append(time.perf_counter() - started)
                if i % 500 == 499:
                    background.drain()  # keep the queue from filling: a full queue would time a drop instead
        ordered = sorted(timings)
        self.stdout.write(
            f"{count} samples of {query}: median {statistics.median(timings) * 1e6:.1f} µs, "
            f"p95 {ordered[round(0.95 * (count - 1))] * 1e6:.1f} µs"
        )

    def latency(self, options):
        urls = list(options["url"])
        if options["urls_from"]:
            try:
                with open(options["urls_from"]) as handle:
                    urls += [line.strip() for line in handle if line.strip()]
            except OSError as exc:
                raise CommandError(f"--urls-from: {exc}") from None
        if not urls:
            raise CommandError("url: give at least one URL (or --urls-from FILE)")
        if options["seconds"] <= 0 or options["rate"] <= 0 or options["concurrency"] < 1:
            raise CommandError("--seconds, --rate and --concurrency must be positive")
        client = Client(urls, options["token"])
        if options["clients"]:
            self.stdout.write(client.closed_loop(options["clients"], options["seconds"]).line())
        elif options["alternate"]:
            self.alternate(client, options)
        else:
            self.stdout.write(client.open_loop(options["rate"], options["seconds"], options["concurrency"]).line())

    def alternate(self, client, options):
        """Windows of shadow 0 % and 100 % for one query, in one run: ABBA order over --rounds rounds, so load
        that drifts during the run falls on both sides alike; then the medians of the windows' percentiles."""
        from rollout.flags import writes
        from rollout.models import QueryFlag
        from rollout.shadow.budget import budget

        query = options["alternate"]
        try:
            get_experiment(query)
            saved = QueryFlag.objects.get(name=flag_name(query)).shadow_percent
        except (LookupError, QueryFlag.DoesNotExist):
            raise CommandError(f"--alternate: no query {query!r} with a flag") from None
        windows = {0: [], 100: []}

        def window(percent, seconds, label=""):
            writes.set_shadow(query, percent, source="benchmark")
            time.sleep(options["settle"])  # every process rereads its flags within a second
            before = _counted(query)
            measured = client.open_loop(options["rate"], seconds, options["concurrency"])
            counted = {k: v - before.get(k, 0) for k, v in _counted(query).items()}
            budget.refresh()
            self.stdout.write(
                f"{label}shadow {percent:>3} % (budget: {budget.effective_percent(query, percent):.3g} %), "
                f"{measured.line()}, compared {counted.get('comparisons', 0)}, "
                f"dropped {counted.get('drops', 0)}, load {load_average()}"
            )
            return measured

        try:
            if options["warmup"] > 0:
                window(100, options["warmup"], label="warm-up, not counted: ")
            for round_ in range(options["rounds"]):
                for percent in (0, 100) if round_ % 2 == 0 else (100, 0):
                    windows[percent].append(window(percent, options["seconds"]))
        finally:
            writes.set_shadow(query, saved, source="benchmark")
        medians = {
            percent: {q: statistics.median(w.ms(q) for w in runs) for q in (0.5, 0.95, 0.99)}
            for percent, runs in windows.items()
        }
        for percent, m in medians.items():
            self.stdout.write(
                f"shadow {percent:>3} %, median of {len(windows[percent])} windows: "
                f"p50 {m[0.5]:.2f} ms, p95 {m[0.95]:.2f} ms, p99 {m[0.99]:.2f} ms"
            )
        self.stdout.write(
            "shadow 100 % ÷ 0 %: "
            + ", ".join(f"p{round(q * 100)} {medians[100][q] / medians[0][q]:.3f}×" for q in (0.5, 0.95, 0.99))
        )


def load_average():
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "n/a"


def _counted(query):
    """The query's comparisons and drops in the metrics so far (as the workers have published them)."""
    metrics.flush()
    totals = metrics.totals(60)
    return {
        name: sum(counts.get(name, 0) for (q, _), counts in totals.items() if q == query)
        for name in ("comparisons", "drops")
    }


@dataclasses.dataclass(frozen=True)
class Window:
    seconds: float
    latencies: tuple  # of the requests answered 200, sorted
    failed: int

    def ms(self, q):
        ordered = self.latencies
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000 if ordered else float("nan")

    def line(self):
        return (
            f"{len(self.latencies)} ok, {self.failed} failed in {self.seconds:.0f} s "
            f"({len(self.latencies) / self.seconds:.1f} req/s): p50 {self.ms(0.5):.2f} ms, "
            f"p95 {self.ms(0.95):.2f} ms, p99 {self.ms(0.99):.2f} ms"
        )


class Client:
    """GETs the URLs in turn over keep-alive connections (one per client thread), so that the client spends
    little of the CPU it shares with the server under test on connecting."""

    def __init__(self, urls, token):
        parts = [urllib.parse.urlsplit(url) for url in urls]
        origins = {(p.scheme, p.hostname, p.port) for p in parts}
        if len(origins) != 1 or next(iter(origins))[0] not in ("http", "https"):
            raise CommandError("url: every URL must be http(s) on one host and port")
        self.scheme, self.host, self.port = next(iter(origins))
        self.paths = [p.path + (f"?{p.query}" if p.query else "") for p in parts]
        self.headers = {"Authorization": f"Token {token}"} if token else {}
        self._local = threading.local()

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self.host, self.port, timeout=30)
        return connection

    def get(self, i):
        """Whether request i (of the i-th URL, in turn) was answered 200. A keep-alive connection the server
        closed while idle is reopened once."""
        for attempt in (1, 2):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.request("GET", self.paths[i % len(self.paths)], headers=self.headers)
                response = connection.getresponse()
                response.read()
                return response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                if not (reused and attempt == 1):
                    return False
        return False

    def open_loop(self, rate, seconds, concurrency):
        """Request i is due at start + i / rate and its latency counts from then, so a client (or a server) that
        falls behind shows as latency, not as a lower offered rate; at most `concurrency` requests in flight
        (beyond that they wait, and their wait counts)."""
        timings, failed, lock = [], [0], threading.Lock()

        def send(i, due):
            ok = self.get(i)
            elapsed = time.perf_counter() - due
            with lock:
                if ok:
                    timings.append(elapsed)
                else:
                    failed[0] += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for i in range(int(seconds * rate)):
                due = started + i / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                pool.submit(send, i, due)
        return Window(seconds, tuple(sorted(timings)), failed[0])

    def closed_loop(self, clients, seconds):
        """As fast as `clients` clients can: throughput at saturation."""
        timings, failed, lock = [], [0], threading.Lock()
        deadline = time.perf_counter() + seconds

        def client(first):
            i = first
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                ok = self.get(i)
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        timings.append(elapsed)
                    else:
                        failed[0] += 1
                i += clients

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return Window(seconds, tuple(sorted(timings)), failed[0])
