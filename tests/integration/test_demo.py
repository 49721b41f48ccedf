import re

import pytest
from django.contrib.auth import authenticate
from django.utils import timezone

from query_backends.management.commands.demo import bring_back_retired
from rollout.flags import writes
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, FlagChange, QueryFlag
from rollout.postgres import dependencies
from tests.legacy_world import ids_of
from tests.rollout_helpers import ROOT, committed, free_port, reset_flags, run_in_process


def forget_demo(started):
    bring_back_retired()  # the function the demo dropped: later tests call it
    Discrepancy.objects.all().delete()
    QueryFlag.objects.filter(name="orm.demo_broken_bu_list").delete()
    reset_flags()
    # The demo's committed flag history (a guard trip on a loaded machine included) is not another test's.
    FlagChange.objects.filter(changed_at__gte=started).delete()


def look_then_forget(started, left):
    left["discrepancies"] = list(
        Discrepancy.objects.filter(query="demo_broken_bu_list").values_list("query", "occurrences", "status")
    )
    left["flags"] = list(
        QueryFlag.objects.values("name", "everyone", "shadow_percent", "guard_tripped_at", "retired_at")
    )
    left["series"] = metrics.series(15)
    left["function"] = dependencies.find("fn_get_web_caps(bigint)")
    try:
        writes.set_shadow("web_capabilities", 10)
    except writes.Retired as refused:
        left["refused"] = str(refused)
    forget_demo(started)
    left["function_back"] = dependencies.find("fn_get_web_caps(bigint)")


@pytest.mark.django_db
def test_the_demo_rolls_out_stage_by_stage_and_leaves_its_story_to_see():
    started, left = timezone.now(), {}
    # Run twice in one process: the second run must start clean, not add to the first. With the shadow budget a
    # newcomer has (the tests' is off): a drawn share of tiny's few calls must still show the broken twin caught.
    code, out, err = run_in_process(
        "from django.core.management import call_command\n"
        "call_command('demo', scale='tiny', calls=40, skip_seed=True)\n"
        "print('=== second run')\n"
        "call_command('demo', scale='tiny', calls=120, skip_seed=True)\n",
        cleanup=lambda: look_then_forget(started, left),
        environment={"ROLLOUT_SHADOW_BUDGET": "0.10"},
    )
    assert code == 0, err[-3000:]
    out = out.split("=== second run")[1]
    for stage in (
        "1. PostgreSQL only",
        "2. shadow 100 %",
        "3. ORM for one site",
        "4. ORM for 10 %",
        "5. ORM for 50 %",
        "6. ORM for everyone",
        "7. a broken twin",
        "8. retire web_capabilities",
    ):
        assert stage in out
    assert "drops:" in out and "control = the PL/pgSQL function" in out  # the words are explained once
    real_stages = out.split("7. a broken twin")[0]
    counts = [int(n) for n in re.findall(r"discrepancies\s+(\d+)", real_stages)]
    assert len(counts) == 6 and set(counts) == {0}
    assert sum(int(n) for n in re.findall(r"comparisons\s+(\d+)", real_stages)) > 0
    assert "the guard caught it, as this stage intends: discrepancy rate" in out
    assert "demo_broken_bu_list now: control for everyone" in out
    # Nothing alarming and no log lines in its output: an expected trip is not an error.
    assert "ERROR" not in out + err and "Warning" not in err and " INFO " not in out + err
    discrepancies, flags, series = left["discrepancies"], left["flags"], left["series"]
    # The catch stays, the second run's only (the first run's went), and the last lines say where to click.
    [(query, occurrences, status)] = discrepancies
    assert query == "demo_broken_bu_list" and status == "new" and occurrences <= 120
    record = re.search(r"the catch: +http://127\.0\.0\.1:8000/admin/rollout/discrepancy/(\d+)/change/", out)
    assert record and f"discrepancy #{record.group(1)}:" in out
    assert "the replay: " in out
    assert "/admin/rollout/dashboard/demo_broken_bu_list/?range=15m" in out  # the guard's trip
    assert "/admin/rollout/dashboard/?range=15m" in out  # the stages
    by_name = {f["name"]: f for f in flags}
    demo_flag = by_name.pop("orm.demo_broken_bu_list")
    assert demo_flag["everyone"] is False and demo_flag["guard_tripped_at"] is not None
    # Where stage 6 left them: the twin for everyone, still compared (unless the guard sent one back: a loaded
    # machine can make a twin look slow).
    rolled_out = [f for f in by_name.values() if f["shadow_percent"] == 100]
    assert len(rolled_out) == 6
    assert all(f["everyone"] is True or f["guard_tripped_at"] for f in rolled_out)
    # It ends with one function retired (unless the guard sent its twin back): dropped, the flag says retired,
    # and the last lines say where to see it. The test puts the function back for the tests after it.
    retired = by_name["orm.web_capabilities"]
    if retired["guard_tripped_at"] is None:
        assert retired["retired_at"] is not None and left["function"] is None
        stage = out.split("== 8. retire web_capabilities")[1]
        assert "candidate 100.0%" in stage and "comparisons    0" in stage
        assert re.search(r"web_capabilities +retired +\S+ +candidate for everyone \(function retired\)", stage)
        assert re.search(r"fn_get_web_caps\(bigint\) +\(dropped\) +web_capabilities +retired 20\d\d-", stage)
        done = out.split("== done")[1]
        assert "web_capabilities is retired: fn_get_web_caps(bigint) dropped" in done
        assert "rollout status" in done and "rollout functions" in done
        # A write to it names how this retirement comes back: there is no migration to migrate back.
        assert "run `manage.py demo` again" in left["refused"] and "migrate" not in left["refused"]
        # The second run found the first run's function back (its flag too: a retired flag refuses the reset
        # before stage 1): its readiness check read the function.
        check = out.split("`rollout retire web_capabilities --check` first:")[1]
        assert "web_capabilities (fn_get_web_caps(bigint)): NOT READY" in check and "ok  dependents" in check
    assert left["function_back"] is not None
    # Each stage counted in its own minute of the last 15 (the second run's only: 120 calls a stage).
    minutes = [sum(c.get("calls", 0) for c in rows.values()) for _, rows in series]
    assert [m for m in minutes if m] == [120] * (8 if retired["retired_at"] else 7)
    # The login is stable: kept once in .data/, and it works.
    user, password = re.search(r"admin login: (\S+) / (\S+)", out).groups()
    assert (ROOT / ".data" / "demo-admin-password").read_text().strip() == password
    assert committed(lambda: authenticate(username=user, password=password) is not None)


@pytest.mark.django_db
def test_a_second_run_starts_clean_whatever_was_tried_between_runs():
    """docs/operations.md's own tries after the demo (a query it never rolls out) and a started plan: the next run
    puts every registered query back on the control, its plan stopped, before stage 1."""
    from query_backends.management.commands.demo import Command
    from rollout.flags import writes
    from rollout.flags.cache import flags
    from rollout.lifecycle import autopilot, plan, stages

    writes.set_shadow("bulist_by_identifier", 100)
    writes.change_cohort("bulist_by_identifier", "site", add=ids_of("SITE", 2))
    writes.set_percent("bulist_by_identifier", 10, key="site")
    autopilot.set_plan("bu_list", plan.starting_plan().as_dict())
    autopilot.start("bu_list")
    writes.kill(["sites_list_web"])
    writes.set_guard("asset_questionsets", window=500)
    writes.set_rescue("schedule_for_adhoc", True, after=10)
    fresh = QueryFlag.objects.filter(name="orm.job_needs").values().get()
    command = Command()
    command.flags, command.metrics = flags, metrics
    command.start_clean()
    for flag in QueryFlag.objects.all():
        assert (stages.stage(flag), flag.everyone, flag.plan_stage) == ("not started", None, None), flag.name
        for field in ("guard_window", "rescue", "rescue_after", "fallback", "exclusions"):
            assert getattr(flag, field) == fresh[field], (flag.name, field)


def test_the_operations_guide_rolls_on_with_a_query_the_demo_leaves_untouched():
    """docs/operations.md shows what a newcomer sees after the demo: its example query is one the demo never
    rolls out, so its replies there are those of a fresh install (which tests/docs compares)."""
    from query_backends.management.commands.demo import QUERIES
    from query_backends.registry import REGISTRY
    from tests.docs.blocks import blocks

    guide = ROOT / "docs" / "operations.md"
    start = next(n for n, line in enumerate(guide.read_text().splitlines(), 1) if line.startswith("**Rolling on.**"))
    block = next(b for b in blocks(guide) if b.line > start)
    queries = {re.search(r"manage\.py rollout \S+ (\S+)", command).group(1) for command, _ in block.steps()}
    assert len(queries) == 1 and queries <= set(REGISTRY.names()) and not queries & set(QUERIES), queries


def test_the_docs_start_plans_of_queries_the_demo_leaves_untouched():
    """The README has a newcomer run the demo first: a query it rolled out serves everyone, and `--start` refuses
    to replace that, so every plan the docs start is of a query the demo never rolls out."""
    from query_backends.management.commands.demo import QUERIES

    started = {
        match.group(1)
        for guide in (ROOT / "docs").glob("*.md")
        for match in re.finditer(r"manage\.py rollout plan (\w+) --start", guide.read_text())
    }
    assert started and not started & set(QUERIES), started


@pytest.mark.django_db
def test_the_demo_compares_in_its_own_process_where_a_broker_is_configured():
    """With REDIS_URL (or CELERY_BROKER_URL) set, comparisons would go to Celery workers the demo never starts:
    it showed no comparison and no catch. Here the broker is one nobody answers on."""
    started, left = timezone.now(), {}
    code, out, err = run_in_process(
        "from django.core.management import call_command\n"
        "call_command('demo', scale='tiny', calls=40, skip_seed=True)\n",
        cleanup=lambda: look_then_forget(started, left),
        environment={"ROLLOUT_SHADOW_BACKEND": "celery", "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    assert code == 0, err[-3000:]
    assert sum(int(n) for n in re.findall(r"comparisons\s+(\d+)", out)) > 0
    assert "the guard caught it" in out and [query for query, *_ in left["discrepancies"]] == ["demo_broken_bu_list"]
