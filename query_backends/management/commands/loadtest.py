"""Load on the JSON API served by gunicorn: PostgreSQL only, ORM 100 %, shadow 100 %.

Integration code, like `demo`: the legacy data gives a realistic parameter mix,
the rollout API sets each mode. A bounded client: N threads with keep-alive
connections, for S seconds per mode; it stops by itself.
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand, CommandError

from query_backends.benchmark import sample_params
from query_backends.management import ports
from query_backends.registry import REGISTRY
from rollout.experiments import query_name

MODES = ("pg", "orm", "shadow")
ROOT = Path(__file__).resolve().parents[3]


LOAD_USER = "loadtest"


def _text(value):
    return (
        value.isoformat() if isinstance(value, datetime) else str(value).lower() if isinstance(value, bool) else value
    )


def add_port_argument(parser):
    parser.add_argument(
        "--port", type=int, default=0, help="the port gunicorn listens on (127.0.0.1); default: a free one"
    )


class Command(BaseCommand):
    help = "Load-test the API under gunicorn in each rollout mode and report throughput, latency and errors."

    def add_arguments(self, parser):
        parser.add_argument("--modes", default=",".join(MODES))
        parser.add_argument("--seconds", type=float, default=60)
        parser.add_argument("--clients", type=int, default=32)
        parser.add_argument("--workers", type=int, default=4)
        parser.add_argument("--json", dest="json_path")
        add_port_argument(parser)

    def handle(self, *args, modes, seconds, clients, workers, json_path, port, **options):
        from rollout.api import tokens
        from rollout.metrics.rollups import metrics

        modes = [m.strip() for m in modes.split(",") if m.strip()]
        if not modes or set(modes) - set(MODES):
            raise CommandError(f"--modes: choose from {', '.join(MODES)}")
        if seconds <= 0 or clients < 1 or workers < 1:
            raise CommandError("--seconds, --clients and --workers must be positive")
        from rollout.flags import transfer

        port = ports.usable(port) if port else ports.free()
        flags_before = transfer.export()  # put back exactly, whatever the modes did to them
        created_user = not User.objects.filter(username=LOAD_USER).exists()
        issued, token = self.token()
        mix = [(q, {k: _text(v) for k, v in p.items()}) for q in REGISTRY.names() for p in sample_params(q, 20, seed=3)]
        names = REGISTRY.names()
        report, server = {}, None
        try:
            server = self.start_gunicorn(port, workers)
            self.stdout.write(f"gunicorn on http://127.0.0.1:{port}/, {workers} workers")
            for mode in modes:
                self.set_mode(names, mode)
                time.sleep(1.5)  # every worker's flag cache rechecks within a second
                before = metrics.snapshot()
                client_side = self.drive(port, token, mix, seconds, clients)
                time.sleep(2.5)  # comparisons finish and every worker's counts reach the store
                counts = metrics.since(before, metrics.snapshot())
                report[mode] = {
                    **client_side,
                    **{
                        name: counts[name]
                        for name in ("comparisons", "discrepancies", "noise", "drops", "fallbacks", "record_failures")
                    },
                }
                self.stdout.write(
                    f"{mode:>7}: "
                    + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in report[mode].items())
                )
        finally:
            if server is not None:
                self.stop_gunicorn(server)
            self.set_mode(names, "pg")  # clears what the run tripped, so the flags' own state can come back
            transfer.apply(flags_before, source="loadtest")
            tokens.revoke(issued.pk)
            if created_user:
                User.objects.filter(username=LOAD_USER).delete()
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2))

    @staticmethod
    def token():
        """(token, key) of a fresh token for the loadtest user; revoked when the run ends."""
        user, _ = User.objects.get_or_create(username=LOAD_USER, defaults={"is_staff": True})
        user.user_permissions.add(Permission.objects.get(codename="query_any_tenant"))
        from rollout.api import tokens

        return tokens.issue(user.get_username())

    @staticmethod
    def set_mode(names, mode):
        """pg: the function serves; orm: the twin serves everyone; shadow: the function serves, every call compared."""
        from rollout import operations
        from rollout.flags import writes

        for flag in operations.flags_for(names):
            if flag.guard_tripped_at:
                writes.clear_guard(query_name(flag.name), source="loadtest")
        (writes.enable if mode == "orm" else writes.disable)(names, source="loadtest")
        for name in names:
            writes.set_percent(name, 0, source="loadtest")
            writes.set_shadow(name, 100 if mode == "shadow" else 0, source="loadtest")

    def start_gunicorn(self, port, workers):
        environ = {**os.environ, "DEBUG": "false", "DJANGO_SETTINGS_MODULE": "settings"}
        if "DATABASE_URL" not in environ:
            db = settings.DATABASES["default"]
            environ["DATABASE_URL"] = f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "settings.wsgi",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=environ,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError(f"gunicorn exited at start (is port {port} taken?)")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return server
            time.sleep(0.2)
        server.terminate()
        raise CommandError("gunicorn did not start within 30 s")

    @staticmethod
    def stop_gunicorn(server):
        """SIGTERM, as a deploy stops it: workers finish their requests, then drain their comparisons for up to
        ROLLOUT_SHADOW_DRAIN_SECONDS (gunicorn.conf.py); past its graceful timeout, killed."""
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    @staticmethod
    def drive(port, token, mix, seconds, clients):
        deadline = time.monotonic() + seconds
        latencies, statuses, backends = [], Counter(), Counter()
        lock = threading.Lock()

        def client(index):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            i = index
            while time.monotonic() < deadline:
                query, params = mix[i % len(mix)]
                i += clients
                started = time.perf_counter()
                try:
                    connection.request(
                        "GET", f"/api/queries/{query}?{urlencode(params)}", headers={"Authorization": f"Token {token}"}
                    )
                    response = connection.getresponse()
                    response.read()
                    status, backend = response.status, response.getheader("X-Rollout-Backend", "-")
                except (OSError, http.client.HTTPException):
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    status, backend = "connection error", "-"
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1
                    backends[backend] += 1
            connection.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ordered = sorted(latencies)
        pick = lambda f: ordered[int(f * (len(ordered) - 1))] * 1000 if ordered else 0.0  # noqa: E731
        return {
            "requests": len(ordered),
            "throughput_rps": len(ordered) / seconds,
            "p50_ms": pick(0.5),
            "p95_ms": pick(0.95),
            "p99_ms": pick(0.99),
            "errors": sum(n for s, n in statuses.items() if s != 200),
            "served_by": dict(backends),
            "median_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
        }
