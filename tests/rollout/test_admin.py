import html

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

import rollout
from rollout.flags import writes
from rollout.models import Discrepancy, FlagChange, QueryFlag
from rollout.routing.actors import Actor
from rollout.shadow.queue import background
from tests.legacy_world import ids_of

pytestmark = pytest.mark.django_db
FORM = {
    "name": "orm.bu_list",
    "note": "bu_list",
    "everyone": "unknown",
    "percent": "0",
    "percent_key": "person",
    "shadow_percent": "0",
    "fallback": "on",
    "rescue_after": "200",
    "guard_window": "200",
    "guard_min_sample": "50",
    "guard_max_discrepancy_rate": "0.01",
    "guard_max_error_rate": "0.05",
    "guard_max_latency_ratio": "3.0",
}


@pytest.fixture
def form(bu_flag):
    """The flag form as posted: two existing sites added (the resolver refuses ids that do not exist)."""
    sites = ids_of("SITE", 2)
    return {**FORM, "cohort__site": ",".join(map(str, sites)), "seen_version": bu_flag.version}, sites


def flag_url(flag, action="change"):
    return reverse(f"admin:rollout_queryflag_{action}", args=[flag.pk] if flag else [])


@pytest.fixture
def bu_flag():
    return QueryFlag.objects.get(name="orm.bu_list")


def test_flag_pages_render_for_staff_and_are_refused_to_others(admin_client, client, bu_flag):
    assert admin_client.get(flag_url(None, "changelist")).status_code == 200
    page = admin_client.get(flag_url(bu_flag))
    assert page.status_code == 200 and b"the first with an opinion wins" in page.content
    assert client.get(flag_url(None, "changelist")).status_code == 302  # to the login page
    User.objects.create_user("plain", password="pw")
    client.login(username="plain", password="pw")
    assert client.get(flag_url(None, "changelist")).status_code == 302


def test_a_flag_change_through_the_admin_writes_history_with_the_user(admin_client, admin_user, bu_flag, form):
    data, sites = form
    response = admin_client.post(flag_url(bu_flag), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    bu_flag.refresh_from_db()
    assert bu_flag.cohorts == {"site": sites}
    change = FlagChange.objects.filter(flag_name="orm.bu_list", source="admin").get()
    assert change.user == admin_user and change.changes["cohorts"] == [{}, {"site": sites}]
    page = admin_client.get(flag_url(bu_flag))
    assert html.escape(f"cohorts: {{}} → {{'site': {sites}}}").encode() in page.content


def test_the_flag_form_refuses_ids_not_of_the_cohort_naming_the_field(admin_client, bu_flag, form):
    data, sites = form
    (zone,) = ids_of("ZONE", 1)  # a row of the same table as the sites, but no site
    for field, value, message in (
        ("cohort__site", f"{sites[0]},{zone}", f"cohort site: no site {zone}"),
        ("exclude__site", "987654321", "cohort site: no site 987654321"),
        ("cohort__client", str(sites[0]), f"cohort client: no client {sites[0]}"),
    ):
        response = admin_client.post(flag_url(bu_flag), {**data, field: value})
        assert response.status_code == 200 and message in response.context["adminform"].form.non_field_errors()
    bu_flag.refresh_from_db()
    assert bu_flag.cohorts == {} and bu_flag.exclusions == {}


def test_staff_without_change_permission_can_look_but_not_change(client, bu_flag, form):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_queryflag"))
    client.login(username="viewer", password="pw")
    assert client.get(flag_url(bu_flag)).status_code == 200
    client.post(flag_url(bu_flag), form[0])
    client.post(flag_url(None, "changelist"), {"action": "kill", "_selected_action": [bu_flag.pk]})
    bu_flag.refresh_from_db()
    assert bu_flag.cohorts == {} and bu_flag.everyone is None


def test_kill_action_sends_the_selected_flags_back(admin_client, admin_user, bu_flag):
    writes.enable(["bu_list"])
    response = admin_client.post(flag_url(None, "changelist"), {"action": "kill", "_selected_action": [bu_flag.pk]})
    assert response.status_code == 302
    bu_flag.refresh_from_db()
    assert bu_flag.everyone is False
    assert FlagChange.objects.filter(flag_name="orm.bu_list", source="admin", user=admin_user).exists()


@pytest.fixture
def recorded(broken_bu_list):
    rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1, fmt="array")
    background.drain()
    return Discrepancy.objects.get(query="bu_list")


def test_discrepancy_page_shows_the_diff_side_by_side_and_replays(admin_client, recorded):
    url = reverse("admin:rollout_discrepancy_change", args=[recorded.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"function (control)" in page.content and b"twin (candidate)" in page.content
    # Parameters and actor read as JSON, not as Python reprs.
    assert b"&quot;fmt&quot;: &quot;array&quot;" in page.content and b"&#x27;fmt&#x27;" not in page.content
    assert b"Replay now" in page.content and b'method="post"' in page.content
    replay = reverse("admin:rollout_discrepancy_replay", args=[recorded.pk])
    assert admin_client.get(replay).status_code == 405  # running queries again is never a GET
    response = admin_client.post(replay, follow=True)
    assert b"they still differ" in response.content


def test_replay_needs_the_csrf_token(admin_user, recorded):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.post(reverse("admin:rollout_discrepancy_replay", args=[recorded.pk])).status_code == 403


def test_a_discrepancy_of_a_query_no_longer_registered_says_so_instead_of_failing(admin_client, recorded, monkeypatch):
    Discrepancy.objects.filter(pk=recorded.pk).update(query="retired_query")
    page = admin_client.get(reverse("admin:rollout_discrepancy_change", args=[recorded.pk]))
    assert page.status_code == 200 and b"retired_query is no longer registered" in page.content
    assert b"Replay now" not in page.content
    response = admin_client.post(reverse("admin:rollout_discrepancy_replay", args=[recorded.pk]), follow=True)
    assert response.status_code == 200
    assert b"Cannot replay" in response.content and b"no longer registered" in response.content


def test_discrepancy_details_need_the_view_permission(client, recorded):
    User.objects.create_user("staffer", password="pw", is_staff=True)
    client.login(username="staffer", password="pw")
    url = reverse("admin:rollout_discrepancy_change", args=[recorded.pk])
    assert client.get(url).status_code == 403
    assert client.post(reverse("admin:rollout_discrepancy_replay", args=[recorded.pk])).status_code == 302


def test_bulk_acknowledge_records_who(admin_client, admin_user, recorded):
    admin_client.post(
        reverse("admin:rollout_discrepancy_changelist"),
        {"action": "mark_acknowledged", "_selected_action": [recorded.pk]},
    )
    recorded.refresh_from_db()
    assert recorded.status == "acknowledged" and recorded.status_changed_by == admin_user


def test_an_api_token_issued_in_the_admin_shows_its_key_once_and_works(admin_client, admin_user):
    from rollout.models import ApiToken

    response = admin_client.post(reverse("admin:rollout_apitoken_add"), {"user": admin_user.pk})
    assert response.status_code == 200
    key = response.content.decode().split('id="api-key"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert ApiToken.user_for(key) == admin_user
    token = ApiToken.objects.get(user=admin_user)
    assert key not in admin_client.get(reverse("admin:rollout_apitoken_changelist")).content.decode()
    assert key not in admin_client.get(reverse("admin:rollout_apitoken_change", args=[token.pk])).content.decode()
    admin_client.post(
        reverse("admin:rollout_apitoken_changelist"),
        {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"},
    )
    assert ApiToken.user_for(key) is None


def test_the_admin_index_links_to_the_dashboard_and_the_site_root_leads_there(admin_client, client):
    index = admin_client.get(reverse("admin:index"))
    assert f'href="{reverse("rollout-dashboard")}"'.encode() in index.content
    assert b"Rollout dashboard" in index.content and b"Query flags" in index.content  # Django's list still there
    root = client.get("/")
    assert root.status_code == 302 and root["Location"] == reverse("rollout-dashboard")
    assert client.get("/", follow=True).redirect_chain[-1][0].startswith(reverse("admin:login"))
    assert admin_client.get("/", follow=True).status_code == 200
