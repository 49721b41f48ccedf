"""benchmark_shadow: the records benchmark takes back all it wrote; the latency client is open-loop and bounded."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from rollout.experiments import flag_name
from rollout.models import Discrepancy, GuardSample, QueryFlag, RecordedCall, RecordedComparison, SentBatch

pytestmark = pytest.mark.django_db(transaction=True)


def rows(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def counts():  # what is there already (a failed worker test may leave a batch behind) stays as it was
    tables = (Discrepancy, RecordedComparison, SentBatch, RecordedCall, GuardSample)
    return (*(model.objects.count() for model in tables), rows("rollout_metricminute"))


def test_the_records_benchmark_leaves_nothing_in_the_database():
    before = counts()
    out = io.StringIO()
    call_command("benchmark_shadow", "records", "--count", "40", "--query", "bu_list", stdout=out)
    assert "40 records of bu_list" in out.getvalue()
    assert counts() == before


def test_the_sample_benchmark_leaves_nothing_though_its_jobs_are_judged():
    before = counts()
    out = io.StringIO()
    call_command("benchmark_shadow", "sample", "bu_list", "--count", "30", "--param", "bu_id=1", stdout=out)
    assert "30 samples of bu_list" in out.getvalue()
    assert counts() == before


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


class Paths(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn answers
    seen, lock = [], threading.Lock()

    def do_GET(self):
        with Paths.lock:
            Paths.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def paths_server():
    Paths.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Paths)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_latency_client_requests_its_urls_in_turn(paths_server, tmp_path):
    more = tmp_path / "urls"
    more.write_text(f"{paths_server}/b?x=1\n\n{paths_server}/c\n")
    out = io.StringIO()
    call_command(
        "benchmark_shadow",
        "latency",
        f"{paths_server}/a",
        "--urls-from",
        str(more),
        "--rate",
        "60",
        "--seconds",
        "1",
        stdout=out,
    )
    assert out.getvalue().startswith("60 ok, 0 failed")
    assert sorted(Paths.seen) == sorted(["/a", "/b?x=1", "/c"] * 20)


def test_alternating_windows_measure_both_sides_and_put_the_flag_back(paths_server):
    from rollout.flags import writes

    writes.set_shadow("bu_list", 5, source="test")
    percents = []
    original = writes.set_shadow

    def spy(query, percent, **kwargs):
        percents.append(int(percent))
        return original(query, percent, **kwargs)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writes, "set_shadow", spy)
        call_command(
            "benchmark_shadow",
            "latency",
            f"{paths_server}/a",
            "--rate",
            "50",
            "--seconds",
            "0.2",
            "--alternate",
            "bu_list",
            "--rounds",
            "2",
            "--settle",
            "0",
            stdout=out,
        )
    assert percents == [0, 100, 100, 0, 5]  # ABBA, then back to what the flag had
    assert QueryFlag.objects.get(name=flag_name("bu_list")).shadow_percent == 5
    text = out.getvalue()
    assert text.count("shadow   0 % (budget") == 2 and text.count("shadow 100 % (budget") == 2
    assert "median of 2 windows" in text and "shadow 100 % ÷ 0 %: p50" in text


def test_alternating_needs_a_query_with_a_flag(paths_server):
    with pytest.raises(CommandError, match="--alternate: no query 'nope'"):
        call_command("benchmark_shadow", "latency", f"{paths_server}/a", "--alternate", "nope", "--seconds", "0.1")
