"""The suite empties the Redis database in REDIS_URL, so it refuses one holding keys it did not write."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.rollout_helpers import ROOT

REDIS_SERVER = shutil.which("redis-server")
PORTS = range(17401, 17420)  # this suite's private range


def free_port():
    for port in PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {PORTS}")


@pytest.fixture
def private_redis(tmp_path):
    """(client on db 3, its URL) of a redis-server of this test's own, stopped by its pid."""
    if not REDIS_SERVER:
        pytest.skip("needs redis-server")
    import redis

    port = free_port()
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, db=3)
    for _ in range(50):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    assert server.poll() is None, "the private redis-server did not start"
    try:
        yield client, f"redis://127.0.0.1:{port}/3"
    finally:
        server.terminate()
        server.wait(10)


def collect(redis_url):
    """A pytest run that only collects one small file: enough for the check at session start."""
    environ = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/rollout/test_equality.py",
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_redis_database_with_someone_elses_keys_is_refused_and_left_alone(private_redis):
    private_redis, url = private_redis
    private_redis.set("someone:else", "precious")
    run = collect(url)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "holds 1 keys the tests did not write" in run.stdout + run.stderr
    assert private_redis.get("someone:else") == b"precious" and private_redis.dbsize() == 1


def test_an_empty_database_is_taken_and_marked_as_the_suites(private_redis):
    private_redis, url = private_redis
    run = collect(url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert private_redis.exists("pg-retire:test-suite-owns-this-database")
    private_redis.set("left:by:a:test", "1")  # the suite's own leftovers do not lock it out
    assert collect(url).returncode == 0
