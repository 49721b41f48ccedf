"""Flag writes compose (rollout.flags.writes): each locks the row, re-reads it and saves only its own fields,
with the history in the same transaction. Races run on real PostgreSQL connections, committed."""

import io
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.urls import reverse

from rollout import reports
from rollout.flags import writes
from rollout.models import FlagChange, QueryFlag
from tests.rollout_helpers import committed, started

pytestmark = pytest.mark.django_db
FLAG = "orm.bu_list"
RESTORED = (
    "everyone",
    "shadow_percent",
    "killed_by",
    "guard_tripped_at",
    "guard_reason",
    "rescue",
    "rescue_after",
    "version",
    "modified",
)


@pytest.fixture
def committed_flag():
    """bu_list's row as committed before the test, put back after it (with its history) — other connections
    write it for real here."""
    flag = committed(lambda: QueryFlag.objects.get(name=FLAG))
    last_change = committed(lambda: FlagChange.objects.order_by("-id").values_list("id", flat=True).first() or 0)
    yield flag
    committed(
        lambda: (
            QueryFlag.objects.filter(name=FLAG).update(**{f: getattr(flag, f) for f in RESTORED}),
            FlagChange.objects.filter(id__gt=last_change).delete(),
        )
    )


class RowHolder(threading.Thread):
    """A third transaction holding the flag's row lock until released."""

    def __init__(self):
        super().__init__()
        self.locked, self.release = threading.Event(), threading.Event()

    def run(self):
        try:
            with transaction.atomic():
                QueryFlag.objects.select_for_update().get(name=FLAG)
                self.locked.set()
                self.release.wait(30)
        finally:
            connections.close_all()

    def __enter__(self):
        self.start()
        assert self.locked.wait(10)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.join()


def waiting_on_locks():
    with connections["default"].cursor() as cursor:
        # pg_locks is live (pg_stat_activity would be a snapshot inside the test's transaction).
        cursor.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_a_kill_and_a_shadow_change_racing_behind_a_held_row_both_land(committed_flag):
    committed(writes.enable, ["bu_list"])
    with RowHolder():
        kill, killed = started(writes.kill, ["bu_list"])
        shadow, shadowed = started(writes.set_shadow, "bu_list", 50)
        deadline = time.monotonic() + 10
        while waiting_on_locks() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_on_locks() >= 2  # both writers queue behind the held row
    kill.join(), shadow.join()
    assert "error" not in killed and "error" not in shadowed
    flag = committed(lambda: QueryFlag.objects.get(name=FLAG))
    assert (flag.everyone, float(flag.shadow_percent)) == (False, 50.0)
    assert reports.serving(flag) == "control for everyone (killed)"
    history = committed(lambda: list(FlagChange.objects.filter(flag_name=FLAG).order_by("-id")[:2]))
    assert {tuple(sorted(change.changes)) for change in history} == {("everyone",), ("shadow_percent",)}
    assert [change.version for change in history] == [flag.version, flag.version - 1]


def test_a_lock_held_past_the_timeout_is_a_one_line_error_and_changes_nothing(settings, committed_flag):
    settings.ROLLOUT_FLAG_LOCK_TIMEOUT_SECONDS = 0.2
    with RowHolder(), pytest.raises(CommandError) as error:
        call_command("rollout", "kill", "bu_list", stdout=io.StringIO())
    message = str(error.value)
    assert message == "flag bu_list: another change held it for more than 0.2 s; it was NOT killed, run the kill again"
    assert QueryFlag.objects.get(name=FLAG).everyone is not False


def test_a_lock_wait_past_a_shorter_statement_timeout_is_still_the_one_line_error(settings, committed_flag):
    settings.ROLLOUT_FLAG_LOCK_TIMEOUT_SECONDS = 0.5
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '100ms'")  # the service's own limit, shorter than the lock's
    with (
        RowHolder(),
        pytest.raises(
            CommandError, match=r"^flag bu_list: another change held it for more than 0\.5 s; nothing was changed"
        ),
    ):
        call_command("rollout", "percent", "bu_list", "20", stdout=io.StringIO())


def test_a_kill_of_every_query_kills_all_it_can_and_names_the_busy_one(settings, committed_flag):
    settings.ROLLOUT_FLAG_LOCK_TIMEOUT_SECONDS = 0.2
    others = ["job_needs", "asset_details"]
    writes.enable(others)
    with RowHolder(), pytest.raises(CommandError) as error:
        call_command("rollout", "kill", stdout=io.StringIO())
    message = str(error.value)
    assert message.startswith("flag bu_list: another change held it for more than 0.2 s; it was NOT killed")
    assert "job_needs" in message and "asset_details" in message
    assert all(f.everyone is False for f in QueryFlag.objects.filter(name__in=[f"orm.{q}" for q in others]))


def test_a_retired_query_does_not_stop_the_kill_of_every_other_query(admin_client):
    """The kill of all queries (and the admin's action on all of them) stopped at the first retired flag in its
    order: the queries after it were left on their twins."""
    from rollout.lifecycle import retire

    others = ["asset_details", "web_capabilities"]  # after bu_list in the kill's order
    writes.enable(["bu_list", *others])
    retire.retire_flag("bu_list", "test")
    call_command("rollout", "kill", stdout=io.StringIO())
    assert all(f.everyone is False for f in QueryFlag.objects.filter(name__in=[f"orm.{q}" for q in others]))
    assert QueryFlag.objects.get(name=FLAG).retired_at is not None  # passed by: it has no control to go back to
    writes.enable(others)
    with pytest.raises(CommandError, match=r"^flag bu_list: retired \(.* the others were killed: web_capabilities$"):
        call_command("rollout", "kill", "bu_list", "web_capabilities", stdout=io.StringIO())
    assert QueryFlag.objects.get(name="orm.web_capabilities").everyone is False
    writes.enable(others)
    selected = list(QueryFlag.objects.values_list("pk", flat=True))
    url = reverse("admin:rollout_queryflag_changelist")
    response = admin_client.post(url, {"action": "kill", "_selected_action": selected}, follow=True)
    assert response.status_code == 200
    assert any("bu_list: retired" in str(m) for m in response.context["messages"])
    assert all(f.everyone is False for f in QueryFlag.objects.filter(name__in=[f"orm.{q}" for q in others]))


def test_a_write_to_a_retired_query_names_how_that_retirement_comes_back():
    """The demo retires with no migration: "migrate the retirement back" named a migration that does not exist."""
    from rollout.lifecycle import retire

    retire.retire_flag("bu_list", "test", undo="run the demo again")
    with pytest.raises(writes.Retired, match=r"its function is dropped; run the demo again to change its flag$"):
        writes.set_shadow("bu_list", 10)
    with pytest.raises(writes.Retired, match=r"no control to send it back to; run the demo again to change its flag$"):
        writes.kill(["bu_list"])
    retire.restore_flag("bu_list")
    retire.retire_flag("bu_list", "migration 0099_retire_bu_list")  # a migration's: migrating back brings it back
    with pytest.raises(writes.Retired, match=r"dropped; migrate the retirement back to change its flag$"):
        writes.enable(["bu_list"])


# --- the admin ------------------------------------------------------------------------------------------------


def form_data(response):
    """What the browser would post back: the form as it was rendered."""
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if name == "everyone":
            data[name] = {True: "true", False: "false"}.get(value, "unknown")
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list):
            data[name] = value
        else:
            data[name] = "" if value is None else value
    return data


def change_url(flag):
    return reverse("admin:rollout_queryflag_change", args=[flag.pk])


def test_a_form_opened_before_the_guard_tripped_cannot_turn_the_candidate_back_on(admin_client):
    flag = QueryFlag.objects.get(name=FLAG)
    writes.enable(["bu_list"])
    opened = form_data(admin_client.get(change_url(flag)))
    assert writes.trip(FLAG, "discrepancy rate over the last 50 comparisons")
    response = admin_client.post(change_url(flag), {**opened, "note": "edited"}, follow=True)
    message = " ".join(str(m) for m in response.context["messages"])
    assert "changed since this form was opened" in message
    assert "everyone" in message and "guard_tripped_at" in message and "by guard" in message
    flag.refresh_from_db()
    assert flag.everyone is False and flag.guard_tripped_at is not None and flag.note != "edited"

    # A fresh form cannot turn it back on either: clear-guard first.
    fresh = form_data(admin_client.get(change_url(flag)))
    response = admin_client.post(change_url(flag), {**fresh, "everyone": "true"}, follow=True)
    assert "run `rollout clear-guard bu_list` first" in " ".join(str(m) for m in response.context["messages"])
    flag.refresh_from_db()
    assert flag.everyone is False

    writes.clear_guard("bu_list")
    flag.refresh_from_db()
    assert reports.serving(flag) == "control for everyone (guard cleared; enable to resume)"
    writes.enable(["bu_list"])
    flag.refresh_from_db()
    assert reports.serving(flag) == "candidate for everyone"


def test_the_admin_writes_only_the_fields_the_operator_changed(admin_client):
    flag = QueryFlag.objects.get(name=FLAG)
    opened = form_data(admin_client.get(change_url(flag)))
    last = FlagChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = admin_client.post(change_url(flag), {**opened, "shadow_percent": "25"})
    assert response.status_code == 302
    [change] = FlagChange.objects.filter(id__gt=last)
    assert list(change.changes) == ["shadow_percent"] and change.source == "admin"
    flag.refresh_from_db()
    assert float(flag.shadow_percent) == 25.0 and change.version == flag.version


def test_a_form_posted_without_the_version_it_was_opened_at_is_refused(admin_client):
    flag = QueryFlag.objects.get(name=FLAG)
    opened = form_data(admin_client.get(change_url(flag)))
    del opened["seen_version"]
    response = admin_client.post(change_url(flag), {**opened, "shadow_percent": "25"})
    assert response.status_code == 200 and "seen_version" in response.context["adminform"].form.errors
    flag.refresh_from_db()
    assert float(flag.shadow_percent) != 25.0


def test_an_unchanged_stale_form_is_refused_too_and_names_who_changed_what(admin_client, admin_user):
    flag = QueryFlag.objects.get(name=FLAG)
    opened = form_data(admin_client.get(change_url(flag)))
    writes.set_percent("bu_list", 10, user=admin_user)
    response = admin_client.post(change_url(flag), opened, follow=True)
    message = " ".join(str(m) for m in response.context["messages"])
    assert f"(version {opened['seen_version']} → {opened['seen_version'] + 1}): percent by admin" in message
    flag.refresh_from_db()
    assert float(flag.percent) == 10.0


# --- rescue and clear-guard at the CLI --------------------------------------------------------------------------


def cli(*args):
    out = io.StringIO()
    call_command("rollout", *args, stdout=out)
    return out.getvalue().strip()


def test_rescue_is_switched_at_the_cli_through_the_same_writes():
    assert cli("rescue", "bu_list", "on", "--after", "40").startswith(
        "bu_list: rescue on, after 40 healthy comparisons"
    )
    flag = QueryFlag.objects.get(name=FLAG)
    assert (flag.rescue, flag.rescue_after) == (True, 40)
    assert FlagChange.objects.filter(flag_name=FLAG, reason="rescue on after 40").exists()
    assert cli("rescue", "bu_list", "off").startswith("bu_list: rescue off (now:")
    flag.refresh_from_db()
    assert (flag.rescue, flag.rescue_after) == (False, 40)
    with pytest.raises(CommandError, match="after: 0 is not a whole number of comparisons of 1 or more"):
        cli("rescue", "bu_list", "on", "--after", "0")


def test_a_write_that_changes_nothing_is_no_new_version():
    writes.kill(["bu_list"])
    version = QueryFlag.objects.get(name=FLAG).version
    writes.kill(["bu_list"])
    assert QueryFlag.objects.get(name=FLAG).version == version


def test_after_clear_guard_a_flag_reads_killed_only_when_someone_killed_it():
    writes.enable(["bu_list"])
    assert writes.trip(FLAG, "candidate error rate")
    assert not writes.trip(FLAG, "a second worker sees it too")  # once
    assert "control for everyone (guard tripped)" in cli("status")
    with pytest.raises(CommandError, match="clear-guard"):
        cli("enable", "bu_list")
    assert "guard cleared" in cli("clear-guard", "bu_list")
    assert "control for everyone (guard cleared; enable to resume)" in cli("status")
    cli("kill", "bu_list")
    assert "control for everyone (killed)" in cli("status")


def test_a_cohort_is_named_as_the_resolver_declares_it_at_the_cli():
    from query_backends.models import BusinessUnit

    def one(kind):
        return BusinessUnit.objects.filter(identifier__tacode=kind).values_list("id", flat=True).first()

    site, zone, client = one("SITE"), one("ZONE"), one("CLIENT")
    assert (
        cli("cohort", "bu_list", "--add", f"site={site}")
        == f"bu_list: site +[{site}] (now: candidate for site [{site}])"
    )
    with pytest.raises(CommandError, match=r"^cohort site: no site 987654321$"):
        cli("cohort", "bu_list", "--add", "site=987654321")
    # Zones and clients are rows of the same table, but not sites; the sentinel row means "none".
    for other in (zone, client, -1):
        with pytest.raises(CommandError, match=rf"^cohort site: no site {other}$"):
            cli("cohort", "bu_list", "--add", f"site={other}")
    with pytest.raises(CommandError, match=rf"^cohort client: no client {site}$"):
        cli("cohort", "bu_list", "--add", f"client={site}")
    with pytest.raises(CommandError, match=r"^--add: 'site' is not COHORT=ID"):
        cli("cohort", "bu_list", "--add", "site")
    assert connection.in_atomic_block  # the errors left the test's transaction usable
    assert QueryFlag.objects.get(name=FLAG).cohorts == {"site": [site]}
