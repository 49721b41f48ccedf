"""Terminate the app's database connections — or stop the database — while gunicorn serves the API.

Integration code, like `loadtest` (whose gunicorn, token and parameter mix it
reuses). Idle: terminate, wait, one request, its latency. Under load: N
clients run the nine queries; every few seconds every connection of the
database but this command's own is terminated (`pg_terminate_backend`). It
reports every status that is not 200 and, per termination, the slowest request
in flight across it. It stops by itself.

With --stop-command and --start-command (shell commands that stop and start
the PostgreSQL server of DATABASE_URL — a cluster of your own: nothing else may
be using it), the load instead meets one outage: after --every seconds the
server is stopped for --down seconds, then started. It reports what callers got
while it was down (statuses, the slowest answer) and, once it accepts
connections again, how long until the first 200.
"""

import http.client
import subprocess
import threading
import time
from collections import Counter
from urllib.parse import urlencode

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from query_backends.benchmark import sample_params
from query_backends.management import ports
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
        loadtest.add_port_argument(parser)
        parser.add_argument("--stop-command", help="a shell command that stops the database server (outage mode)")
        parser.add_argument("--start-command", help="a shell command that starts it again")
        parser.add_argument("--down", type=float, default=10.0, help="seconds the database stays stopped")

    def handle(self, *args, seconds, clients, workers, every, idle_rounds, port, **options):
        from rollout.api import tokens

        if seconds <= 0 or clients < 1 or workers < 1 or every <= 0:
            raise CommandError("--seconds, --clients, --workers and --every must be positive")
        outage = (options["stop_command"], options["start_command"])
        if any(outage) and not all(outage):
            raise CommandError("--stop-command and --start-command go together")
        if all(outage) and (options["down"] <= 0 or every + options["down"] >= seconds):
            raise CommandError("--down must be positive and --every + --down shorter than --seconds")
        port = ports.usable(port) if port else ports.free()
        load = loadtest.Command()
        issued, token = load.token()
        mix = [
            (q, {k: loadtest._text(v) for k, v in p.items()})
            for q in REGISTRY.names()
            for p in sample_params(q, 20, seed=3)
        ]
        server = None
        try:
            server = load.start_gunicorn(port, workers)
            self.stdout.write(f"gunicorn on http://127.0.0.1:{port}/, {workers} workers")
            self.warm(port, token, mix, workers)
            if all(outage):
                connection.close()  # this command's own connection would not survive the stop
                self.outage(port, token, mix, seconds, clients, every, options["down"], *outage)
            else:
                self.idle(port, token, mix, idle_rounds)
                self.under_load(port, token, mix, seconds, clients, every)
        finally:
            if server is not None:
                load.stop_gunicorn(server)
            tokens.revoke(issued.pk)

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

    def load(self, port, token, mix, seconds, clients):
        """Start N clients for `seconds`: (samples, a list they fill, and the threads to join)."""
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
        return samples, threads, deadline

    def outage(self, port, token, mix, seconds, clients, every, down, stop_command, start_command):
        samples, threads, _ = self.load(port, token, mix, seconds, clients)
        time.sleep(every)
        stopped = time.perf_counter()
        subprocess.run(stop_command, shell=True, check=True)
        time.sleep(down)
        subprocess.run(start_command, shell=True, check=True)
        back = self.accepting()
        for thread in threads:
            thread.join()
        during = [(s, e, status) for s, e, status in samples if stopped <= s and e <= back]
        statuses = Counter(str(status).split(" {")[0] for _, _, status in during)
        first_ok = min((e for s, e, status in samples if status == 200 and e > back), default=None)
        self.stdout.write(
            f"outage: stopped {back - stopped:.1f} s; {len(during)} requests started and answered meanwhile, "
            f"statuses {dict(statuses)}, slowest {max((e - s for s, e, _ in during), default=0) * 1000:.0f} ms; "
            f"across its start (in flight when it stopped) the slowest "
            f"{max((e - s for s, e, _ in samples if s < stopped < e), default=0) * 1000:.0f} ms"
        )
        self.stdout.write(
            "back: first 200 "
            + (f"{(first_ok - back) * 1000:.0f} ms after the database accepted connections" if first_ok else "never")
            + f"; {len(samples)} requests in {seconds:.0f} s, statuses "
            f"{dict(Counter(str(status).split(' {')[0] for _, _, status in samples))}"
        )

    @staticmethod
    def accepting():
        """When the database accepts connections again (polled directly, every 10 ms)."""
        params = connection.get_connection_params()
        while True:
            try:
                psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}).close()
                return time.perf_counter()
            except psycopg.OperationalError:
                time.sleep(0.01)

    def under_load(self, port, token, mix, seconds, clients, every):
        samples, threads, deadline = self.load(port, token, mix, seconds, clients)
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
