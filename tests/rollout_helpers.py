"""Helpers for tests that need what other threads and processes see: committed state."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from django.db import connection, connections

ROOT = Path(__file__).resolve().parent.parent
FLAG_DEFAULTS = {
    "everyone": None,
    "percent": 0,
    "percent_key": "person",
    "cohorts": {},
    "exclusions": {},
    "killed_by": "",
    "shadow_percent": 0,
    "fallback": True,
    "superusers": False,
    "staff": False,
    "authenticated": False,
    "guard_tripped_at": None,
    "guard_reason": "",
    "retired_at": None,
    "retired_from": {},
}


def started(function, *args, **kwargs):
    """Start it in another thread on its own connection (committed when it returns): (thread, outcome)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 — re-raised or inspected by the caller
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def committed(function, *args, **kwargs):
    """Run in another thread on its own connection, committed when it returns."""
    thread, outcome = started(function, *args, **kwargs)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def reset_flags():
    from rollout.models import QueryFlag

    for flag in QueryFlag.objects.all():
        for field, value in FLAG_DEFAULTS.items():
            setattr(flag, field, value)
        flag.save()
        flag.users.clear()
        flag.groups.clear()


def database_url(name=None):
    """The test database's URL, or that of another database `name` on the same server."""
    settings = connection.settings_dict
    host, name = settings["HOST"] or "127.0.0.1", name or settings["NAME"]
    if host.startswith("/"):
        return f"postgresql://{settings['USER']}@/{name}?host={host}"
    return f"postgresql://{settings['USER']}@{host}:{settings['PORT'] or 5432}/{name}"


def manage(*argv, environ=None, timeout=120):
    """`manage.py ARGV` in a process of its own, in this environment or the one given: its CompletedProcess."""
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=os.environ if environ is None else environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def python_process(code, **environment):
    """A separate Django process on the test database and the same cache, reading code from -c."""
    prelude = "import django, os, sys, time\ndjango.setup()\n"
    environ = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "settings", **environment}
    return subprocess.Popen(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=environ,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_in_process(code, cleanup, timeout=300, environment=None):
    """Run Django code in a separate process on the test database; cleanup() runs committed afterwards."""
    process = python_process(code, **(environment or {}))
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    finally:
        committed(cleanup)
    return process.returncode, out, err


def replace_definition(monkeypatch, query, **changes):
    """Swap parts of a registered query's definition for one test; returns the original definition."""
    import dataclasses

    from query_backends.registry import REGISTRY

    definition = REGISTRY.get(query)
    monkeypatch.setitem(REGISTRY._definitions, query, dataclasses.replace(definition, **changes))
    return definition


def wait_for(condition, seconds):
    """Whether condition() became true within `seconds` (asked every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def private_redis_server(directory):
    """(process, port) of a redis-server of the caller's own on a free port, stopped by its pid."""
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    break
            assert server.poll() is None and time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)
        yield server, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGCONT)  # a test may have stopped it
        server.terminate()
        server.wait(timeout=10)


def plain_sql(statement, params=()):
    """A committed write through a plain psycopg connection: no Django, no signal."""
    with psycopg.connect(database_url(), autocommit=True, options="-c lock_timeout=10s") as conn:
        conn.execute(statement, params)


def committed_generation(table):
    with psycopg.connect(database_url(), autocommit=True) as conn:
        sql = "SELECT coalesce(sum(n), 0) FROM query_cache_generation WHERE table_name = %s"
        return conn.execute(sql, [table]).fetchone()[0]


def wait_until_listener_watches(table):
    """Until this process's listener has a generation of `table` (its trigger installed and read)."""
    from rollout.cache import generations

    deadline = time.monotonic() + 30
    while table not in (generations.listener.generations() or {}):
        assert time.monotonic() < deadline, f"the listener never watched {table}"
        time.sleep(0.005)


def wait_until_heard(table, listener=None):
    """Until this process's listener holds the committed generation of `table` (the hang guard is not a timing)."""
    from rollout.cache import generations

    target = committed_generation(table)
    deadline = time.monotonic() + 30
    while ((listener or generations.listener).generations() or {}).get(table, 0) < target:
        assert time.monotonic() < deadline, f"the listener never heard of the write to {table}"
        time.sleep(0.002)
