"""Migrations write through the alias being migrated: a second database migrates beside a migrated default."""

import os
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from tests.rollout_helpers import ROOT, committed, database_url

pytestmark = pytest.mark.django_db


def _execute(sql):
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # dropping a database takes a while on a busy machine
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else None


def test_a_second_alias_migrates_with_its_own_sentinels_and_flags():
    name = f"h_second_{uuid.uuid4().hex[:8]}"
    default = database_url()
    second = (
        default.rsplit("/", 1)[0] + f"/{name}"
        if "?host=" not in default
        else default.replace(f"/{connection.settings_dict['NAME']}?", f"/{name}?")
    )
    committed(_execute, f"CREATE DATABASE {name}")
    try:
        environ = {**os.environ, "DATABASE_URL": default, "DATABASE_REPLICA_URL": second}
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--database", "replica", "-v0"],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert migrate.returncode == 0, migrate.stderr[-2000:]
        count = (
            "import django; django.setup(); from django.db import connections; c = connections['replica'].cursor();"
            "c.execute('SELECT (SELECT count(*) FROM bt WHERE id = -1), (SELECT count(*) FROM rollout_queryflag)');"
            "print(*c.fetchone())"
        )
        read = subprocess.run(
            [sys.executable, "-c", count], cwd=ROOT, env={**environ, "DJANGO_SETTINGS_MODULE": "settings"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert read.stdout.split() == ["1", "9"], read.stderr[-2000:]  # the sentinel, and a flag per legacy query
    finally:
        committed(_execute, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
