"""The shipped gunicorn configuration (gunicorn.conf.py): slow clients cannot freeze it, a stop loses nothing.

Real gunicorn processes on the test database, started and stopped here by pid, on a free port.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from rollout.metrics.rollups import metrics
from rollout.models import ApiToken, Discrepancy, QueryFlag
from tests.rollout_helpers import ROOT, committed, database_url, free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def gunicorn(*args, **env):
    """The shipped configuration (gunicorn reads ./gunicorn.conf.py) on a free port."""
    port = free_port()
    environ = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "settings", **env}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "settings.wsgi", "-b", f"127.0.0.1:{port}", *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read()[-3000:]
        try:
            get(port, "/api/queries/bu_list?bu_id=1")
            return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not answer within 60 s")


def get(port, path, token=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Authorization": f"Token {token}"} if token else {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def stop(server):
    """SIGTERM, as a deploy sends it; gunicorn's log (stderr) once it has exited."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    return server.communicate(timeout=60)[1]


def test_two_idle_and_two_half_sent_connections_leave_the_server_answering():
    server, port = gunicorn()
    slow = []
    try:
        for half in (b"", b"", b"GET /api/queries/bu_list?bu_id=1 HTTP/1.1\r\n", b"GET /api/queries/bu_l"):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(half)
            slow.append(sock)
        time.sleep(0.5)  # the workers have accepted them all
        # Answered (the JSON 401 of a request without a token) while the four hold on, not after a worker timeout.
        assert [get(port, "/api/queries/bu_list?bu_id=1") for _ in range(5)] == [401] * 5
    finally:
        for sock in slow:
            sock.close()
        log = stop(server)
    assert "Using worker: gthread" in log  # the shipped configuration, not gunicorn's sync default


def test_sigterm_finishes_or_counts_every_queued_comparison_of_a_gunicorn_worker():
    calls = 40
    env = {
        "ROLLOUT_REGISTRY": "tests.toy.REGISTRY",
        "ROLLOUT_SHADOW_BACKEND": "thread",
        "ROLLOUT_SHADOW_WORKERS": "1",
        "ROLLOUT_SHADOW_QUEUE_SIZE": "100",
        "ROLLOUT_SHADOW_DRAIN_SECONDS": "0.5",
        "TOY_WRONG": ",".join(str(n) for n in range(calls)),  # every comparison is recorded
        "TOY_DELAY_SECONDS": "0.2",  # 0.4 s a comparison: the drain cannot finish them all
    }

    def prepare():
        from django.contrib.auth.models import Permission, User

        QueryFlag.objects.filter(name="orm.toy").delete()
        QueryFlag.objects.create(name="orm.toy", shadow_percent=100)
        user, _ = User.objects.get_or_create(username="serving-test")
        user.user_permissions.add(Permission.objects.get(codename="query_any_tenant"))
        return ApiToken.issue(user)

    token = committed(prepare)
    server, port = gunicorn("-w", "1", **env)
    try:
        assert {get(port, f"/api/queries/toy?n={n}", token) for n in range(calls)} == {200}
    finally:
        stop(server)
    recorded = committed(lambda: Discrepancy.objects.filter(query="toy").values_list("occurrences", flat=True).first())
    drops = metrics.snapshot().get(("toy", "new"), {}).get("drops", 0)
    assert 0 < (recorded or 0) < calls and (recorded or 0) + drops == calls, (recorded, drops)
    committed(lambda: (QueryFlag.objects.filter(name="orm.toy").delete(), ApiToken.objects.all().delete()))
