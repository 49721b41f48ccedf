import os
import signal
import subprocess
import sys

import psycopg
import pytest
from django.db import connection

from tests.rollout_helpers import ROOT, database_url

SCALE = "small"  # the world the docs' examples name ids from: the demo's


def shell(script, database, timeout=120):
    """Run a doc's shell text from the repository root on `database`, as a reader would: no Redis, no broker."""
    environ = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    environ |= {"DATABASE_URL": database_url(database), "DJANGO_SETTINGS_MODULE": "settings", "PYTHONUNBUFFERED": "1"}
    script = script.replace(".venv/bin/", f"{os.path.dirname(sys.executable)}/")
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a command that outlives the timeout is ended with everything it started
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        err += f"\n(stopped after {timeout} s: a long-running command needs <!-- not-run: why -->)"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def admin(statement):
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def seeded_template(django_db_blocker):
    """One database per test session, migrated and seeded as the docs' readers seed theirs; docs copy it."""
    with django_db_blocker.unblock():
        name = f"{connection.settings_dict['NAME']}_docs"
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    try:
        seeded = shell(
            f".venv/bin/python manage.py migrate -v0 && .venv/bin/python manage.py seed_demo_data --scale {SCALE}", name
        )
        assert seeded.returncode == 0, seeded.stdout[-2000:] + seeded.stderr[-3000:]
        yield name
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_database(seeded_template):
    """A copy of the seeded template for one document (its commands change flags), made on first use."""
    made = []

    def make():
        if not made:
            name = f"{seeded_template}_copy"
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin(f'CREATE DATABASE "{name}" TEMPLATE "{seeded_template}"')
            made.append(name)
        return made[0]

    yield make
    for name in made:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
