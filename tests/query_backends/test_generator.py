import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from query_backends import generator
from query_backends.functions import FUNCTIONS
from query_backends.sentinels import SENTINEL_ID
from tests.conftest import WORLD_SEED, quiet_progress

ROOT = Path(__file__).resolve().parents[2]
SENTINEL_TABLES = ("bt", "people", "pgroup", "asset", "questionset", "capability")
ANCHOR = date(2024, 5, 1)


def installed_functions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname FROM pg_proc WHERE proname = ANY(%s)", [list(FUNCTIONS)])
        return {row[0] for row in cursor.fetchall()}


def sentinel_names():
    names = {}
    with connection.cursor() as cursor:
        for table in SENTINEL_TABLES:
            cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [SENTINEL_ID])
            columns = [c.name for c in cursor.description]
            row = dict(zip(columns, cursor.fetchone()))
            names[table] = next(
                row[c] for c in ("bucode", "peoplecode", "groupname", "assetcode", "qsetname", "capscode") if c in row
            )
    return names


@pytest.mark.django_db
def test_sentinel_rows_exist():
    assert sentinel_names() == dict.fromkeys(SENTINEL_TABLES, "NONE")


@pytest.fixture
def scratch_database():
    """An empty database on the same server, as a DATABASE_URL; dropped afterwards."""
    settings = connection.settings_dict
    name = f"scratch_{os.getpid()}"
    params = {
        "host": settings["HOST"] or None,
        "port": settings["PORT"] or None,
        "user": settings["USER"],
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    host = settings["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        url = f"postgresql://{settings['USER']}@/{name}?host={host}"
    else:
        url = f"postgresql://{settings['USER']}@{host}:{settings['PORT'] or 5432}/{name}"
    yield url
    with psycopg.connect(**params) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def manage(url, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        timeout=300,
        check=True,
    ).stdout


def scratch_state(url):
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        functions = {
            r[0] for r in conn.execute("SELECT proname FROM pg_proc WHERE proname = ANY(%s)", [list(FUNCTIONS)])
        }
        sentinels = (
            conn.execute("SELECT count(*) FROM bt WHERE id = -1 AND bucode = 'NONE'").fetchone()[0]
            if "bt" in tables
            else 0
        )
    return tables, functions, sentinels


@pytest.mark.smoke
@pytest.mark.django_db
def test_migrations_apply_to_an_empty_database_and_reverse_cleanly(scratch_database):
    manage(scratch_database, "migrate", "--no-input")
    tables, functions, sentinels = scratch_state(scratch_database)
    assert {"bt", "jobneed", "questionset", "capability"} <= tables
    assert functions == set(FUNCTIONS) and sentinels == 1
    manage(scratch_database, "migrate", "query_backends", "zero", "--no-input")
    tables, functions, _ = scratch_state(scratch_database)
    assert not {"bt", "jobneed", "questionset", "capability"} & tables and functions == set()
    manage(scratch_database, "migrate", "--no-input")
    assert scratch_state(scratch_database)[1:] == (set(FUNCTIONS), 1)


@pytest.mark.django_db
def test_contract_columns_exist_with_their_types():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('jobneed', 'questionset', 'people', 'asset')"
        )
        types = {(t, c): d for t, c, d in cursor.fetchall()}
    assert types[("jobneed", "id")] == "bigint"
    assert types[("jobneed", "plandatetime")] == "timestamp with time zone"
    assert types[("jobneed", "seqno")] == "smallint"
    assert types[("jobneed", "multifactor")] == "numeric"
    assert types[("jobneed", "other_info")] == "jsonb"
    assert types[("questionset", "assetincludes")] == "ARRAY"
    assert types[("people", "people_extras")] == "jsonb"
    assert types[("asset", "location_id")] == "bigint"


def checksums_of(seed, anchor=ANCHOR):
    generator.reset()
    generator.load("tiny", seed=seed, anchor=anchor, progress_factory=quiet_progress)
    return generator.table_checksums()


@pytest.mark.django_db
def test_generator_is_deterministic():
    with transaction.atomic():
        first, again, other = checksums_of(1), checksums_of(1), checksums_of(2)
        transaction.set_rollback(True)
    assert first == again
    assert first["jobneed"] != other["jobneed"] and first["people"] != other["people"]
    assert first["jobneed"][0] == generator.SCALES["tiny"].jobneeds


def fraction(where, table="jobneed"):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT avg(CASE WHEN {where} THEN 1.0 ELSE 0 END) FROM {table} WHERE id <> -1")
        return float(cursor.fetchone()[0])


QUIRKS = [
    ("identifier IS NULL", "jobneed", "jobneed.identifier_null"),
    ("jobstatus IS NULL", "jobneed", "jobneed.jobstatus_null"),
    ("ctzoffset = -1", "jobneed", "jobneed.ctzoffset_legacy"),
    ("people_id = -1", "jobneed", "jobneed.people_sentinel"),
    ("people_id IS NULL", "jobneed", "jobneed.people_null"),
    ("pgroup_id = -1", "jobneed", "jobneed.pgroup_sentinel"),
    ("pgroup_id IS NULL", "jobneed", "jobneed.pgroup_null"),
    ("pgroup_id = -1", "pgbelonging", None),
    ("uptodt < current_date", "sitepeople", None),
    ("fromdt > current_date", "sitepeople", None),
    ("identifier IS NULL", "asset", "asset.identifier_null"),
    ("servprov_id = -1", "asset", None),
    ("people_extras ->> 'assignsitegroup' !~ '^(-?[0-9]+( -?[0-9]+)*)?$'", "people", None),
    ("NOT (people_extras ? 'assignsitegroup')", "people", None),
    ("now() BETWEEN plandatetime AND expirydatetime", "jobneed", None),
    (
        "plandatetime IS NOT NULL AND ctzoffset <> -1 AND "
        "abs(extract(epoch FROM (plandatetime + ctzoffset * interval '1 minute')::time)) < 180",
        "jobneed",
        None,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("where,table,rate", QUIRKS)
def test_each_quirk_occurs_at_its_rate(where, table, rate):
    seen = fraction(where, table)
    assert seen > 0, f"{table}: no row where {where}"
    if rate is not None:
        rate = generator.QUIRK_RATES[rate]
        assert rate / 3 < seen < rate * 3, f"{table}: {where} in {seen:.3f} of rows, expected about {rate}"


@pytest.mark.django_db
def test_names_differing_only_in_case_and_ids_of_several_digit_counts():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT lower(qsetname) FROM questionset "
            "GROUP BY lower(qsetname) HAVING count(DISTINCT qsetname) > 1) t"
        )
        assert cursor.fetchone()[0] > 0
        cursor.execute("SELECT count(DISTINCT length(id::text)) FROM questionset WHERE id > 0")
        assert cursor.fetchone()[0] >= 2


@pytest.mark.django_db
def test_seed_command_refuses_existing_data_and_reset_replaces_it():
    with transaction.atomic():
        with pytest.raises(CommandError, match="--reset"):
            call_command("seed_demo_data", "--scale", "tiny")
        before = generator.table_checksums()
        call_command("seed_demo_data", "--scale", "tiny", "--seed", str(WORLD_SEED + 1), "--reset")
        after = generator.table_checksums()
        assert after["jobneed"] != before["jobneed"]
        assert after["jobneed"][0] == generator.SCALES["tiny"].jobneeds
        assert sentinel_names() == dict.fromkeys(SENTINEL_TABLES, "NONE")
        transaction.set_rollback(True)
