"""generator.load's mechanics: its own statement_timeout, and a failed load that leaves nothing behind."""

import time

import pytest
from django.db import connection

from query_backends import generator
from tests.conftest import rolled_back

pytestmark = pytest.mark.django_db


class Progress:
    """A progress bar that lets a test act at a given row of a given table (inside that table's COPY)."""

    def __init__(self, table, total, at=None):
        self.table, self.n, self.at = table, 0, at

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, count):
        self.n += count
        if self.at and self.table == self.at[0] and self.n == self.at[1]:
            self.at[2]()


def sizes():
    """Every legacy table's files, indexes included, in bytes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'",
            [list(generator.LEGACY_TABLES)],
        )
        return dict(cursor.fetchall())


def test_a_failed_load_rolls_back_whole_and_leaves_no_bloat():
    def fail():
        raise RuntimeError("the disk filled up")

    with rolled_back():
        generator.reset()
        before = sizes()
        with pytest.raises(RuntimeError, match="disk"):
            generator.load(
                "tiny", progress_factory=lambda table, total: Progress(table, total, ("jobneed", 1500, fail))
            )
        assert not generator.legacy_rows_exist()
        # The rows COPY had written went with the files they were written to.
        assert sizes() == before


def test_the_load_sets_its_own_statement_timeout():
    with rolled_back():
        generator.reset()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '300ms'")
        # The COPY of jobneed outlasts the caller's timeout by far.
        slow = ("jobneed", 10, lambda: time.sleep(1.0))
        counts = generator.load("tiny", progress_factory=lambda table, total: Progress(table, total, slow))
        assert counts["jobneed"] == generator.SCALES["tiny"].jobneeds
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "300ms"  # the caller's, back


def test_a_load_over_existing_data_is_refused():
    with pytest.raises(ValueError, match="already hold data"):
        generator.load("tiny", progress_factory=lambda table, total: Progress(table, total))


def test_the_command_reports_the_rows_it_loaded_when_its_output_is_not_a_terminal():
    import io

    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()  # no terminal: the progress bars are off
    with rolled_back():
        call_command("seed_demo_data", "--scale", "tiny", "--reset", stdout=out, stderr=err)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM jobneed")
            loaded = cursor.fetchone()[0]
    reported = dict(line.split() for line in out.getvalue().splitlines()[1:])
    assert int(reported["jobneed"].replace(",", "")) == loaded == generator.SCALES["tiny"].jobneeds
    assert all(int(count.replace(",", "")) > 0 for count in reported.values())
