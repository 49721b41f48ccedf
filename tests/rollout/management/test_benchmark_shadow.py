"""benchmark_shadow: the records benchmark takes back all it wrote; the latency client is open-loop and bounded."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.db import connection

from rollout.models import Discrepancy, RecordedComparison, SentBatch

pytestmark = pytest.mark.django_db(transaction=True)


def rows(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def test_the_records_benchmark_leaves_nothing_in_the_database():
    before = (Discrepancy.objects.count(), RecordedComparison.objects.count(), rows("rollout_metricminute"))
    out = io.StringIO()
    call_command("benchmark_shadow", "records", "--count", "40", "--query", "bu_list", stdout=out)
    assert "40 records of bu_list" in out.getvalue()
    after = (Discrepancy.objects.count(), RecordedComparison.objects.count(), rows("rollout_metricminute"))
    assert after == before and SentBatch.objects.count() == 0


class Slow(BaseHTTPRequestHandler):
    in_flight, most, lock = 0, 0, threading.Lock()

    def do_GET(self):
        with Slow.lock:
            Slow.in_flight += 1
            Slow.most = max(Slow.most, Slow.in_flight)
        threading.Event().wait(0.05)
        with Slow.lock:
            Slow.in_flight -= 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_the_latency_client_sends_every_scheduled_request_with_at_most_its_concurrency_in_flight():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = io.StringIO()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        call_command(
            "benchmark_shadow", "latency", url, "--rate", "100", "--seconds", "1", "--concurrency", "2", stdout=out
        )
    finally:
        server.shutdown()
    assert out.getvalue().startswith("100 ok, 0 failed") and "p99" in out.getvalue()
    assert Slow.most == 2  # 100 requests of 50 ms offered at 100/s: they queue behind the two in flight
