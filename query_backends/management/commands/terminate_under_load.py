"""Terminate the app's database connections while gunicorn serves the API, idle and under load.

Integration code, like `loadtest` (whose gunicorn, token and parameter mix it
reuses). Idle: terminate, wait, one request, its latency. Under load: N
clients run the nine queries; every few seconds every connection of the
database but this command's own is terminated (`pg_terminate_backend`). It
reports every status that is not 200 and, per termination, the slowest request
in flight across it. It stops by itself.
"""

import http.client
import threading
import time
from collections import Counter
from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from query_backends.benchmark import sample_params
from query_backends.management.commands import loadtest
from query_backends.registry import REGISTRY

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


class Command(BaseCommand):
    help = "Terminate the app's PostgreSQL connections under gunicorn, idle and under load; report what callers saw."

    def add_arguments(self, parser):
        parser.add_argument("--seconds", type=float, default=30)
        parser.add_argument("--clients", type=int, default=16)
        parser.add_argument("--workers", type=int, default=4)
        parser.add_argument("--every", type=float, default=3.0, help="seconds between terminations under load")
        parser.add_argument("--idle-rounds", type=int, default=3)

    def handle(self, *args, seconds, clients, workers, every, idle_rounds, **options):
        if seconds <= 0 or clients < 1 or workers < 1 or every <= 0:
            raise CommandError("--seconds, --clients, --workers and --every must be positive")
        load = loadtest.Command()
        token = load.token()
        mix = [
            (q, {k: loadtest._text(v) for k, v in p.items()})
            for q in REGISTRY.names()
            for p in sample_params(q, 20, seed=3)
        ]
        port = load.free_port()
        server = load.start_gunicorn(port, workers)
        try:
            self.warm(port, token, mix, workers)
            self.idle(port, token, mix, idle_rounds)
            self.under_load(port, token, mix, seconds, clients, every)
        finally:
            server.terminate()
            server.wait(10)

    @staticmethod
    def request(conn, token, query, params):
        started = time.perf_counter()
        try:
            conn.request(
                "GET", f"/api/queries/{query}?{urlencode(params)}", headers={"Authorization": f"Token {token}"}
            )
            response = conn.getresponse()
            body = response.read()
            status = response.status if response.status == 200 else f"{response.status} {body[:120].decode()}"
        except (OSError, http.client.HTTPException):
            conn.close()
            status = "connection error"
        return started, time.perf_counter(), status

    def warm(self, port, token, mix, workers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for query, params in mix[: workers * 10]:
            self.request(conn, token, query, params)
        conn.close()

    def terminate(self):
        with connection.cursor() as cursor:
            cursor.execute(TERMINATE)
            return cursor.fetchone()[0]

    def idle(self, port, token, mix, rounds):
        for round_ in range(rounds):
            killed = self.terminate()
            time.sleep(1.0)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            query, params = mix[round_ * 7 % len(mix)]
            started, ended, status = self.request(conn, token, query, params)
            conn.close()
            self.stdout.write(
                f"idle round {round_ + 1}: terminated {killed}, next request {query} -> {status} "
                f"in {(ended - started) * 1000:.0f} ms"
            )

    def under_load(self, port, token, mix, seconds, clients, every):
        deadline = time.monotonic() + seconds
        samples, lock = [], threading.Lock()

        def client(index):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            i = index
            while time.monotonic() < deadline:
                query, params = mix[i % len(mix)]
                i += clients
                sample = self.request(conn, token, query, params)
                with lock:
                    samples.append(sample)
            conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        kills = []
        time.sleep(every)
        while time.monotonic() < deadline - every / 2:
            kills.append((time.perf_counter(), self.terminate()))
            time.sleep(every)
        for thread in threads:
            thread.join()
        statuses = Counter(status for _, _, status in samples)
        latencies = sorted(ended - started for started, ended, _ in samples)
        self.stdout.write(
            f"under load: {len(samples)} requests from {clients} clients in {seconds:.0f} s, "
            f"statuses {dict(statuses)}, median {latencies[len(latencies) // 2] * 1000:.0f} ms, "
            f"slowest {latencies[-1] * 1000:.0f} ms"
        )
        for at, killed in kills:
            across = [ended - started for started, ended, _ in samples if started <= at <= ended]
            after = [ended - started for started, ended, _ in samples if at < started <= at + 0.5]
            self.stdout.write(
                f"  terminated {killed}: slowest request in flight across it {max(across, default=0) * 1000:.0f} ms, "
                f"slowest started within 0.5 s after {max(after, default=0) * 1000:.0f} ms"
            )
