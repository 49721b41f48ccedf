import io
import json

import pytest
from django.core.management import CommandError, call_command

from rollout.models import FlagChange, QueryFlag

pytestmark = pytest.mark.django_db


def rollout(*args):
    out = io.StringIO()
    call_command("rollout", *args, stdout=out)
    return out.getvalue()


def flag(query):
    return QueryFlag.objects.get(name=f"orm.{query}")


def test_status_lists_every_query_as_a_table_and_as_json():
    table = rollout("status")
    assert table.splitlines()[0].split()[:3] == ["query", "serving", "percent"]
    rows = json.loads(rollout("--json", "status"))
    assert {r["query"] for r in rows} >= {"job_needs", "web_capabilities"}
    assert all(r["serving"] == "control (no rule)" and r["guard"] == "armed" for r in rows)


def test_enable_disable_and_kill():
    rollout("enable", "bu_list", "job_needs")
    assert flag("bu_list").everyone is True and flag("job_needs").everyone is True
    assert "candidate for everyone" in rollout("status")
    rollout("disable", "bu_list")
    assert flag("bu_list").everyone is None
    rollout("kill", "job_needs")
    assert flag("job_needs").everyone is False and flag("bu_list").everyone is None


def test_percent_with_its_key_and_shadow():
    assert "10% by site" in rollout("percent", "job_needs", "10", "--key", "site")
    assert (float(flag("job_needs").percent), flag("job_needs").percent_key) == (10.0, "site")
    rollout("shadow", "job_needs", "25.5")
    assert float(flag("job_needs").shadow_percent) == 25.5


def test_cohort_add_remove_and_exclude_in_both_spellings():
    rollout("cohort", "bu_list", "--add-site", "3", "4", "--add-clients", "9", "--add-person", "7")
    f = flag("bu_list")
    assert (f.sites, f.clients, f.people) == ([3, 4], [9], [7])
    rollout("cohort", "bu_list", "--remove-sites", "3", "--add-people-groups", "5")
    rollout("cohort", "bu_list", "--exclude", "--add-sites", "4")
    f = flag("bu_list")
    assert (f.sites, f.people_groups, f.excluded_sites) == ([4], [5], [4])
    assert FlagChange.objects.filter(flag_name="orm.bu_list", source="cli").count() == 3  # one per command


def test_clear_guard_forgets_a_trip():
    f = flag("bu_list")
    f.everyone, f.guard_reason = False, "tripped in a test"
    f.guard_tripped_at = f.modified
    f.save()
    rollout("clear-guard", "bu_list")
    f.refresh_from_db()
    assert f.guard_tripped_at is None and f.guard_reason == "" and f.everyone is False


@pytest.mark.parametrize(
    "args,message",
    [
        (["enable", "nope"], "unknown query nope"),
        (["kill", "bu_list", "nope"], "unknown query nope"),
        (["percent", "bu_list", "abc"], "percent: 'abc' is not a number"),
        (["percent", "bu_list", "100"], "rollout enable"),
        (["percent", "bu_list", "-1"], "not between 0 and"),
        (["shadow", "bu_list", "101"], "not between 0 and 100"),
        (["cohort", "bu_list"], "give at least one id"),
        (["replay", "999999"], "no discrepancy 999999"),
        (["purge", "--older-than", "-1"], "DAYS must be 0 or more"),
    ],
)
def test_bad_requests_are_one_line_errors(args, message):
    with pytest.raises(CommandError, match=message):
        rollout(*args)


def test_waffles_own_flag_command_still_works_on_query_flags():
    call_command("waffle_flag", "orm.bu_list", "--everyone", stdout=io.StringIO())
    assert flag("bu_list").everyone is True
    assert FlagChange.objects.filter(flag_name="orm.bu_list", changes__everyone=[None, True]).exists()
