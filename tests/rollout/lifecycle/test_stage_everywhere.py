"""The lifecycle stage and the time in it, on every surface: `rollout status`, the dashboard overview and the API."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from rollout.flags import writes
from rollout.lifecycle import stages
from rollout.models import ApiToken, QueryFlag
from tests.legacy_world import ids_of

pytestmark = pytest.mark.django_db


def a_day_in_percentage():
    writes.set_percent("bu_list", 10)

    def change(flag):
        flag.stage_since = timezone.now() - timedelta(days=1, hours=2)
        return ["stage_since"]

    writes.write(["orm.bu_list"], change, source="test")


def test_each_write_that_changes_the_stage_starts_its_time_again_and_others_do_not():
    flag = lambda: QueryFlag.objects.get(name="orm.bu_list")  # noqa: E731
    assert stages.stage(flag()) == "not started"
    writes.set_shadow("bu_list", 100)
    assert stages.stage(flag()) == "shadow"
    shadow_since = flag().stage_since
    writes.set_guard("bu_list", window=300)  # not a stage change
    assert flag().stage_since == shadow_since
    writes.change_cohort("bu_list", "site", add=ids_of("SITE", 1))
    assert stages.stage(flag()) == "cohorts" and flag().stage_since > shadow_since
    writes.set_percent("bu_list", 5)
    assert stages.stage(flag()) == "percentage"
    writes.enable(["bu_list"])
    assert stages.stage(flag()) == "everyone"


def test_a_kill_and_the_enable_that_lifts_it_keep_the_stage_and_its_time():
    flag = lambda: QueryFlag.objects.get(name="orm.bu_list")  # noqa: E731
    a_day_in_percentage()
    writes.enable(["bu_list"])
    served_everyone_since = flag().stage_since
    writes.kill(["bu_list"])
    assert stages.stage(flag()) == "everyone" and flag().stage_since == served_everyone_since
    writes.set_shadow("bu_list", 50)  # another write while killed: still the stage it was killed in
    assert stages.stage(flag()) == "everyone" and flag().stage_since == served_everyone_since
    writes.enable(["bu_list"])
    assert stages.stage(flag()) == "everyone" and flag().stage_since == served_everyone_since
    writes.set_percent("bu_list", 20)
    writes.disable(["bu_list"])  # a kill of a percentage flag keeps the percentage
    percentage_since = flag().stage_since
    writes.kill(["bu_list"])
    assert stages.stage(flag()) == "percentage" and flag().stage_since == percentage_since
    writes.enable(["bu_list"])  # lifting it to everyone is a stage change
    assert stages.stage(flag()) == "everyone" and flag().stage_since > percentage_since


def test_the_api_shows_each_querys_stage_and_time_in_stage_to_whoever_may_view_flags(client, admin_client):
    a_day_in_percentage()
    assert client.get("/api/rollout/status").status_code == 401
    viewer = User.objects.create_user("viewer")
    key = ApiToken.issue(viewer)
    refused = client.get("/api/rollout/status", HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 403 and "rollout.view_queryflag" in refused.json()["error"]
    viewer.user_permissions.add(Permission.objects.get(codename="view_queryflag"))
    rows = {
        r["query"]: r for r in client.get("/api/rollout/status", HTTP_AUTHORIZATION=f"Token {key}").json()["queries"]
    }
    assert rows["bu_list"]["stage"] == "percentage" and rows["bu_list"]["in_stage"] == "1d 2h"
    assert rows["job_needs"]["stage"] == "not started"
    assert admin_client.post("/api/rollout/status").status_code == 405


def test_the_dashboard_overview_shows_the_stage_and_the_time_in_it(admin_client):
    a_day_in_percentage()
    page = admin_client.get("/admin/rollout/dashboard/").content.decode()
    assert "<b>percentage</b> for 1d 2h" in page and "<b>not started</b>" in page
