import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from rollout.models import FlagChange, QueryFlag
from tests.legacy_world import ids_of

pytestmark = pytest.mark.django_db


def rollout(*args):
    out = io.StringIO()
    call_command("rollout", *args, stdout=out)
    return out.getvalue()


def flag(query):
    return QueryFlag.objects.get(name=f"orm.{query}")


def test_status_lists_every_query_as_a_table_and_as_json():
    table = rollout("status")
    assert table.splitlines()[0].split()[:5] == ["query", "stage", "in_stage", "serving", "percent"]
    rows = json.loads(rollout("--json", "status"))
    assert {r["query"] for r in rows} >= {"job_needs", "web_capabilities"}
    assert all(r["serving"] == "control (no rule)" and r["guard"] == "armed" for r in rows)
    assert all(r["stage"] == "not started" and r["stage_since"] for r in rows)


def test_status_shows_the_share_the_budget_compares_and_only_the_percent_in_force(settings):
    from rollout.shadow.budget import budget

    settings.ROLLOUT_SHADOW_BUDGET = 0.10  # no comparison measured yet: at most the budget's share is compared
    budget.forget()
    rollout("shadow", "bu_list", "100")
    rollout("percent", "job_needs", "50")

    def rows():
        by_query = {r["query"]: r for r in json.loads(rollout("--json", "status"))}
        lines = rollout("status").splitlines()
        header = re.split(r"\s{2,}", lines[0])
        cells = {line.split()[0]: dict(zip(header, re.split(r"\s{2,}", line))) for line in lines[1:]}
        return by_query, cells

    by_query, cells = rows()
    assert (by_query["bu_list"]["shadow"], by_query["bu_list"]["shadow_compared"]) == (100, pytest.approx(10))
    assert cells["bu_list"]["shadow"] == "100 → 10 (budget)"
    assert by_query["job_needs"]["percent"] == 50 and cells["job_needs"]["percent"] == "50"
    rollout("enable", "job_needs")  # everyone: the 50 % kept to give back decides for no one
    by_query, cells = rows()
    assert by_query["job_needs"]["percent"] is None and cells["job_needs"]["percent"] == "-"
    assert float(flag("job_needs").percent) == 50


def test_tables_end_their_lines_at_the_last_character():
    rollout("shadow", "bu_list", "5")  # a short row under the long ones the migrations wrote
    for command in ("status", "history"):
        lines = rollout(command).splitlines()
        assert len(lines) > 2 and [line for line in lines if line != line.rstrip()] == [], command


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


@pytest.mark.smoke
def test_each_reply_says_what_changed():
    assert rollout("shadow", "bu_list", "100").startswith("bu_list: shadow 100 %")
    assert rollout("shadow", "bu_list", "25.5").startswith("bu_list: shadow 25.5 %")
    assert rollout("percent", "bu_list", "10").startswith("bu_list: 10 % by person")
    a, b = ids_of("SITE", 2)
    assert rollout("cohort", "bu_list", "--add", f"site={a},{b}").startswith(f"bu_list: site +[{a}, {b}]")
    assert rollout("cohort", "bu_list", "--exclude", "--add", f"site={b}").startswith(f"bu_list: excluded site +[{b}]")
    assert rollout("kill", "bu_list").startswith("bu_list: killed, the control serves everyone")
    assert rollout("enable", "bu_list").startswith("bu_list: candidate for everyone")
    reply = json.loads(rollout("--json", "disable", "bu_list"))
    assert reply[0]["changed"] == "back to the cohort rules" and reply[0]["flag"] == "orm.bu_list"


def test_tokens_are_issued_listed_and_revoked():
    from django.contrib.auth.models import User

    from rollout.models import ApiToken

    user = User.objects.create_user("caller")
    issued = rollout("token", "issue", "caller")
    key = issued.split(": ", 1)[1].split()[0]
    assert ApiToken.user_for(key) == user and "Shown once" in issued
    token_id = ApiToken.objects.get(user=user).pk
    listing = rollout("token", "list")
    assert "caller" in listing and key not in listing
    assert json.loads(rollout("--json", "token", "list", "caller"))[0]["id"] == token_id
    assert rollout("token", "revoke", str(token_id)) == f"token #{token_id} of caller revoked\n"
    assert ApiToken.user_for(key) is None
    with pytest.raises(CommandError, match="user: no user 'nobody'"):
        rollout("token", "issue", "nobody")
    with pytest.raises(CommandError, match=f"id: no token {token_id}"):
        rollout("token", "revoke", str(token_id))


def test_forget_removes_what_a_retired_query_left_and_refuses_a_registered_one():
    from rollout.models import Discrepancy

    QueryFlag.objects.create(name="orm.retired", note="retired")
    Discrepancy.objects.create(query="retired", flag="orm.retired", kind="mismatch", fingerprint="x" * 64)
    assert rollout("forget", "retired") == "retired: deleted 1 flag and 1 discrepancy\n"
    assert not QueryFlag.objects.filter(name="orm.retired").exists()
    assert not Discrepancy.objects.filter(query="retired").exists()
    Discrepancy.objects.create(query="gone", flag="orm.gone", kind="mismatch", fingerprint="y" * 64)
    Discrepancy.objects.create(query="gone", flag="orm.gone", kind="mismatch", fingerprint="z" * 64)
    assert rollout("forget", "gone") == "gone: deleted 0 flags and 2 discrepancies\n"
    with pytest.raises(CommandError, match="bu_list is still registered; only the records of a query no longer"):
        rollout("forget", "bu_list")
    # A typo, or a query already forgotten: nothing to delete is refused rather than reported as done.
    with pytest.raises(CommandError, match=r"^query: retired has no flag and no discrepancies; nothing to forget$"):
        rollout("forget", "retired")


def test_cohort_add_remove_and_exclude_of_several_declared_cohorts():
    from query_backends.models import People, PeopleGroup

    (a, b), (client,) = ids_of("SITE", 2), ids_of("CLIENT", 1)
    person = People.objects.exclude(id=-1).values_list("id", flat=True).first()
    team = PeopleGroup.objects.exclude(id=-1).values_list("id", flat=True).first()
    last = FlagChange.objects.order_by("-id").values_list("id", flat=True).first() or 0  # others' committed history
    rollout("cohort", "bu_list", "--add", f"site={a},{b}", f"client={client}", f"person={person}")
    assert flag("bu_list").cohorts == {"site": sorted([a, b]), "client": [client], "person": [person]}
    rollout("cohort", "bu_list", "--remove", f"site={a}", "--add", f"people_group={team}")
    rollout("cohort", "bu_list", "--exclude", "--add", f"site={b}")
    f = flag("bu_list")
    assert (f.cohorts["site"], f.cohorts["people_group"], f.exclusions) == ([b], [team], {"site": [b]})
    assert FlagChange.objects.filter(id__gt=last, flag_name="orm.bu_list", source="cli").count() == 3  # one per command


def test_clear_guard_forgets_a_trip():
    from rollout.flags import writes

    writes.trip("orm.bu_list", "tripped in a test")
    rollout("clear-guard", "bu_list")
    f = flag("bu_list")
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
        (["cohort", "bu_list", "--add", "region=1"], "cohort: region is not one of person, people_group, site, client"),
        (["cohort", "bu_list", "--add", "site=x"], "--add: 'site=x' is not COHORT=ID"),
        (["rescue", "bu_list", "on", "--after", "-3"], "after: -3 is not a whole number"),
        (["replay", "999999"], "no discrepancy 999999"),
        (["percent", "bu_list", "0.05"], "percent: 0.05 has more than one decimal place"),
        (["purge", "--older-than", "-1"], "--older-than: -1 is not between 0 and 36500"),
        (["purge", "--older-than", "99999999999"], "--older-than: 99999999999 is not between 0 and 36500"),
        (["purge-metrics", "--older-than", "nan"], "--older-than: nan is not between 0 and 876000"),
        (["history", "bu_list", "--limit", "-1"], "--limit: -1 is not between 1 and 100000"),
        (["history", "bu_list", "--limit", "99999999999999999999"], "--limit: 99999999999999999999 is not between"),
    ],
)
def test_bad_requests_are_one_line_errors(args, message):
    with pytest.raises(CommandError, match=message):
        rollout(*args)


def test_waffles_own_flag_command_works_on_the_hosts_flags_and_leaves_query_flags_alone():
    from waffle.models import Flag

    before = FlagChange.objects.count()
    call_command("waffle_flag", "host_feature", "--everyone", "--create", stdout=io.StringIO())
    assert Flag.objects.get(name="host_feature").everyone is True
    assert FlagChange.objects.count() == before and not QueryFlag.objects.filter(name="host_feature").exists()
