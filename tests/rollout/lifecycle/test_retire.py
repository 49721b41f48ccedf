"""Retirement on real PostgreSQL: readiness names what still needs the function — a view, a trigger, another
function's body, calls from a separate connection — and retire writes a reversible migration: forward, the twin
serves with no decision and the function is gone; back, the function answers as before and the flag is restored."""

import io
import json
import math
import re
import time
from datetime import timedelta

import psycopg
import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

import rollout
from query_backends.registry import REGISTRY
from rollout import reports
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.lifecycle import autopilot, readiness, retire, stages
from rollout.models import FlagChange, FunctionCallCount, QueryFlag
from rollout.postgres import dependencies, inventory
from rollout.routing.actors import Actor
from tests.rollout_helpers import committed, database_url

pytestmark = pytest.mark.django_db
ALICE = Actor(person=1, client=10, site=100)
SIGNATURE = "fn_get_web_caps(bigint)"


def sql(*statements):
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def everyone_for_a_week():
    writes.enable(["web_capabilities"])

    def change(flag):
        flag.stage_since = timezone.now() - timedelta(days=8)
        return ["stage_since"]

    writes.write(["orm.web_capabilities"], change, source="test")


@pytest.fixture
def ready_settings(settings):
    settings.ROLLOUT_RETIRE_MIN_COMPARISONS = 0
    settings.ROLLOUT_RETIRE_CALL_WINDOW_HOURS = 0
    settings.ROLLOUT_FLAG_RECHECK_SECONDS = 0.2
    settings.ROLLOUT_RETIRE_SETTLE_SECONDS = 0.2
    return settings


def reasons(query="web_capabilities"):
    return {r.check: r for r in readiness.check(query).reasons}


def test_a_function_something_still_needs_is_not_ready_and_each_user_is_named(ready_settings):
    everyone_for_a_week()
    sql(
        "SET track_functions = 'pl'",
        "CREATE VIEW life_menu AS SELECT * FROM fn_get_web_caps(1)",
        "CREATE FUNCTION life_menu_size() RETURNS bigint LANGUAGE plpgsql AS "
        "$$ BEGIN RETURN (SELECT count(*) FROM fn_get_web_caps(1)); END $$",
    )
    autopilot.tick()  # the tick counts the calls of a function whose twin serves everyone
    assert FunctionCallCount.objects.filter(function=SIGNATURE).count() == 1
    first = reasons()
    assert first["dependents"].ready is False and "view life_menu" in first["dependents"].text
    assert first["function_bodies"].ready is False and "life_menu_size()" in first["function_bodies"].text
    # The tick's count is the window's start (the window is 0 h here): nobody else has called it since.
    assert first["external_calls"].ready is True and "none from outside" in first["external_calls"].text
    assert first["served_everyone"].ready is True and first["discrepancies"].ready is True
    with psycopg.connect(database_url(), autocommit=True) as elsewhere:  # a report, a cron job, another service
        elsewhere.execute("SET track_functions = 'pl'")
        for _ in range(3):
            elsewhere.execute("SELECT * FROM fn_get_web_caps(1)").fetchall()
    for _ in range(50):  # the other session's counts reach the statistics as it ends
        external = reasons()["external_calls"]
        if external.ready is False:
            break
        time.sleep(0.1)
    assert external.ready is False and external.text.startswith("3 calls from outside this application")
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_code:
        call_command("rollout", "retire", "web_capabilities", "--check", "--json", stdout=out)
    assert exit_code.value.code == 1
    report = json.loads(out.getvalue())
    assert report["ready"] is False and {r["check"] for r in report["reasons"] if r["ready"] is False} >= {
        "dependents",
        "function_bodies",
    }


def external_calls_once_counted(expected):
    """The external_calls reason once it starts with `expected` (a session's calls reach the statistics as it
    ends), or the last one seen."""
    for _ in range(50):
        found = reasons()["external_calls"]
        if found.text.startswith(expected):
            break
        time.sleep(0.1)
    return found


def calls_from_elsewhere(n):
    with psycopg.connect(database_url(), autocommit=True) as elsewhere:  # a report, a cron job, another service
        elsewhere.execute("SET track_functions = 'pl'")
        for _ in range(n):
            elsewhere.execute("SELECT * FROM fn_get_web_caps(1)").fetchall()


def window_from_an_hour_ago(settings, in_flight=0):
    """Time controlled: a count taken an hour ago (as the autopilot's tick takes them) starts a half-hour window;
    the checks' own counts are too recent to start it instead."""
    settings.ROLLOUT_RETIRE_CALL_WINDOW_HOURS = 0.5
    sql("SET track_functions = 'pl'")
    start = timezone.now() - timedelta(hours=1)
    FunctionCallCount.objects.create(
        function=SIGNATURE,
        taken_at=start,
        database_calls=dependencies.calls(dependencies.find(SIGNATURE)),
        own_calls=readiness._own_calls("web_capabilities", math.floor(start.timestamp() / 60)),
        own_in_flight=in_flight,
    )


def test_the_applications_own_calls_are_subtracted_from_what_postgresql_counted(ready_settings):
    window_from_an_hour_ago(ready_settings)
    assert external_calls_once_counted("none from outside").ready is True

    def own_calls():  # the application serving from the function, on a connection of its own
        with connection.cursor() as cursor:
            cursor.execute("SET track_functions = 'pl'")
        for _ in range(5):
            rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        assert rollout.last_decision().role == "control"

    committed(own_calls)
    mine = external_calls_once_counted("none from outside")
    assert mine.ready is True and "(5 calls, all its own)" in mine.text
    calls_from_elsewhere(3)
    external = external_calls_once_counted("3 calls from outside")
    assert external.ready is False
    assert "(PostgreSQL counted 8, this application made 5)" in external.text


def test_own_calls_in_flight_at_the_windows_edge_make_it_cannot_tell_never_ready(ready_settings):
    """A window whose start had 2 own calls in flight: 2 calls unaccounted for could be those (cannot tell);
    3 are at least 1 from outside."""
    window_from_an_hour_ago(ready_settings, in_flight=2)
    calls_from_elsewhere(2)
    unsure = external_calls_once_counted("cannot tell: 2 calls unaccounted for")
    assert unsure.ready is None and "no more than the 2 of its own that were in flight" in unsure.text
    calls_from_elsewhere(1)
    external = external_calls_once_counted("at least 1 calls from outside")
    assert external.ready is False


def test_with_track_functions_off_it_says_so_plainly_and_is_not_ready(ready_settings):
    everyone_for_a_week()
    sql("SET track_functions = 'none'")
    external = reasons()["external_calls"]
    assert external.ready is None and "track_functions is 'none'" in external.text
    assert "ALTER SYSTEM SET track_functions = 'pl'" in external.text
    assert not readiness.check("web_capabilities").ready


def test_external_calls_cannot_be_told_for_a_function_postgresql_may_inline(ready_settings):
    """A SQL-language function may be inlined into the calling statement, and an inlined call is never counted
    (whatever track_functions says): its external calls read "none from outside" and ready."""
    everyone_for_a_week()
    sql("SET track_functions = 'all'", "CREATE FUNCTION life_sql(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT $1'")
    inlined = readiness._external_calls("web_capabilities", dependencies.find("life_sql(bigint)"))
    assert inlined.ready is None and "SQL-language function" in inlined.text


def test_pg_depend_names_a_trigger_a_default_a_check_constraint_and_an_index():
    sql(
        "CREATE FUNCTION life_double(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'",
        "CREATE TABLE life_t (a bigint DEFAULT life_double(1) CHECK (life_double(a) < 100), b bigint)",
        "CREATE INDEX life_t_double ON life_t (life_double(b))",
        "CREATE FUNCTION life_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "CREATE TRIGGER life_t_touch BEFORE INSERT ON life_t FOR EACH ROW WHEN (life_double(NEW.b) > 0) "
        "EXECUTE FUNCTION life_touch()",
    )
    found = dependencies.dependents(dependencies.find("life_double(bigint)"))
    assert "trigger life_t_touch on life_t" in found
    assert "default of life_t.a" in found
    assert any(f.startswith("check constraint life_t_a_check") for f in found)
    assert "index life_t_double" in found


def test_a_body_naming_a_function_whose_name_is_no_regular_expression_is_still_named():
    sql(
        "CREATE FUNCTION life$caps() RETURNS int LANGUAGE sql AS 'SELECT 1'",  # `$` is legal in a name
        "CREATE FUNCTION life_uses() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN life$caps(); END $f$",
        "CREATE FUNCTION \"life(caps\"() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        'CREATE FUNCTION life_quoted() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN "life(caps"(); END $f$',
    )
    assert dependencies.bodies_naming(dependencies.find("life$caps()")) == ["life_uses()"]
    assert dependencies.bodies_naming(dependencies.find('"life(caps"()')) == ["life_quoted()"]


def test_a_kill_keeps_the_week_served_but_is_never_ready_while_it_holds(ready_settings):
    everyone_for_a_week()
    writes.kill(["web_capabilities"])
    served = reasons()["served_everyone"]
    assert served.ready is False and "stage everyone for 8d" in served.text and "killed" in served.text
    writes.enable(["web_capabilities"])  # lifted: the week still counts
    assert reasons()["served_everyone"].ready is True


def test_retire_refuses_a_query_that_is_not_ready_in_one_line():
    with pytest.raises(CommandError, match=r"^web_capabilities: not ready to retire \(served_everyone: stage"):
        call_command("rollout", "retire", "web_capabilities")


def test_retire_migrate_the_twin_serves_with_the_function_gone_migrate_back_and_it_answers_as_before(
    ready_settings, capsys
):
    definition = REGISTRY.get("web_capabilities")
    before = definition.run("pg", definition.clean({"root_id": 1}))
    everyone_for_a_week()
    writes.set_shadow("web_capabilities", 100)
    flag_before = QueryFlag.objects.get(name="orm.web_capabilities")
    previous = MigrationLoader(connection).graph.leaf_nodes("query_backends")[0][1]
    # What pg_get_functiondef leaves out must come back too: who owns it, who may run it (not PUBLIC), its comment.
    sql(
        "CREATE ROLE life_owner",  # the roles are rolled back with the test's transaction
        "CREATE ROLE life_reports",
        f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO life_reports WITH GRANT OPTION",
        f"ALTER FUNCTION {SIGNATURE} OWNER TO life_owner",
        f"COMMENT ON FUNCTION {SIGNATURE} IS 'web menu, 50% of the app''s calls'",
    )
    catalog = (
        "SELECT proacl::text, proowner::regrole::text, obj_description(oid, 'pg_proc') FROM pg_proc "
        f"WHERE oid = '{SIGNATURE}'::regprocedure"
    )
    with connection.cursor() as cursor:
        cursor.execute(catalog)
        as_it_was = cursor.fetchone()
    written = retire.write_migration("web_capabilities", force=True)  # track_functions is off here: --force
    path, name = written.path, written.name
    assert (written.app_label, written.back_to) == ("query_backends", previous)
    assert f"python manage.py migrate query_backends {previous}" in path.read_text()
    try:
        assert path.parent.name == "migrations" and path.parent.parent.name == "query_backends"
        call_command("migrate", "query_backends", name, verbosity=0)
        assert dependencies.find(SIGNATURE) is None
        flags.invalidate()
        assert rollout.dispatch("web_capabilities", actor=ALICE, root_id=1) == before
        decision = rollout.last_decision()
        assert (decision.role, decision.rule, decision.shadow) == ("candidate", "retired", False)
        retired = QueryFlag.objects.get(name="orm.web_capabilities")
        assert stages.stage(retired) == "retired" and retired.retired_at is not None
        call_command("rollout", "status")
        assert "candidate for everyone (function retired)" in capsys.readouterr().out
        [row] = [r for r in reports.status() if r["query"] == "web_capabilities"]
        assert (row["stage"], row["shadow"]) == ("retired", 0)  # the kept 100 % is for migrating back
        # `rollout functions` lists the dropped function as retired, with when; --check does not call it missing,
        # nor does the system check.
        call_command("rollout", "functions", "--check")
        when = f"retired {retired.retired_at:%Y-%m-%d %H:%M} UTC"
        assert re.search(rf"fn_get_web_caps\(bigint\) +\(dropped\) +web_capabilities +{when}", capsys.readouterr().out)
        [row] = [r for r in inventory.inventory()["functions"] if r["query"] == "web_capabilities"]
        assert (row["stage"], row["retired_at"]) == ("retired", retired.retired_at)
        assert not [m for m in checks.run_checks() if m.id == "query_backends.W001"]
        with pytest.raises(CommandError, match=r"retired .*migrate the retirement back"):
            call_command("rollout", "kill", "web_capabilities")
        # --check says it is retired, not "NOT READY", and still exits 1: it is no go-ahead to retire it again.
        with pytest.raises(SystemExit) as exited:
            call_command("rollout", "retire", "web_capabilities", "--check")
        checked = capsys.readouterr().out
        assert exited.value.code == 1 and "NOT READY" not in checked and " NO " not in checked
        assert re.match(
            r"web_capabilities \(fn_get_web_caps\(bigint\)\): RETIRED already: its function was dropped ", checked
        )

        call_command("migrate", "query_backends", previous, verbosity=0)
        assert dependencies.find(SIGNATURE) is not None
        assert definition.run("pg", definition.clean({"root_id": 1})) == before
        with connection.cursor() as cursor:
            cursor.execute(catalog)
            assert cursor.fetchone() == as_it_was
        restored = QueryFlag.objects.get(name="orm.web_capabilities")
        assert restored.retired_at is None and restored.stage_since == flag_before.stage_since
        assert (restored.everyone, restored.shadow_percent) == (flag_before.everyone, flag_before.shadow_percent)
        flags.invalidate()
        rollout.dispatch("web_capabilities", actor=ALICE, root_id=1)
        assert rollout.last_decision().rule == "everyone"
    finally:
        path.unlink()


def test_a_second_retirement_migration_finds_the_function_gone_and_leaves_the_query_retired(ready_settings):
    everyone_for_a_week()
    first = retire.write_migration("web_capabilities", force=True).path
    second = retire.write_migration("web_capabilities", force=True).path  # written before the first is applied
    try:
        call_command("migrate", "query_backends", second.stem, verbosity=0)  # the first, then the second
        assert dependencies.find(SIGNATURE) is None
        assert QueryFlag.objects.get(name="orm.web_capabilities").retired_at is not None
    finally:
        first.unlink()
        second.unlink()


def test_a_drop_postgresql_refuses_leaves_the_query_as_it_was_not_retired(ready_settings):
    """--force past a dependent view: the DROP fails after the flag was retired (the migration is not atomic).
    The flag is given back, so the query is not left retired with its function there and every write refused."""
    everyone_for_a_week()
    sql("CREATE VIEW life_still_needs_it AS SELECT * FROM fn_get_web_caps(1)")
    version = QueryFlag.objects.get(name="orm.web_capabilities").version
    path = retire.write_migration("web_capabilities", force=True).path
    try:
        with pytest.raises(Exception, match="depend"):
            call_command("migrate", "query_backends", path.stem, verbosity=0)
        assert dependencies.find(SIGNATURE) is not None
        flag = QueryFlag.objects.get(name="orm.web_capabilities")
        assert flag.retired_at is None and flag.everyone is True and flag.version == version + 2
        last = FlagChange.objects.filter(flag_name="orm.web_capabilities").first()
        assert last.reason == "retirement failed: the function could not be dropped"
        writes.kill(["web_capabilities"])  # the kill switch works again
        assert QueryFlag.objects.get(name="orm.web_capabilities").everyone is False
    finally:
        path.unlink()
