"""A PostgreSQL cluster of a test's own (initdb, a free port), for faults that stop the server.

The postmaster is a child of the test, started directly (no pg_ctl daemon), so it is stopped by its pid.
As root, initdb and postgres refuse to run: they run as the `postgres` system user instead.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.rollout_helpers import free_port


def _bindir():
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        return None
    return Path(os.path.realpath(pg_ctl)).parent


class PrivatePostgres:
    def __init__(self):
        bindir = _bindir()
        if bindir is None or not (bindir / "initdb").exists():
            pytest.skip("needs PostgreSQL's initdb and postgres binaries")
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.directory = Path(tempfile.mkdtemp(prefix="pg-retire-private-pg-"))
        self.data = self.directory / "data"
        if self.as_root:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self.port = free_port()
        self.process = None
        self._run([self.bindir / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync"], check=True)

    def _run(self, args, **kwargs):
        account = {"user": "postgres", "group": "postgres"} if self.as_root else {}
        return subprocess.run([str(a) for a in args], capture_output=True, **account, **kwargs)

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        account = {"user": "postgres", "group": "postgres"} if self.as_root else {}
        self.process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **account,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    raise RuntimeError("the private PostgreSQL exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("the private PostgreSQL did not accept connections within 30 s")

    def stop(self):
        """Fast shutdown (SIGINT to the postmaster): sessions end, the port closes."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()
