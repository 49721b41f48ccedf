"""The dashboard: an overview row per query, a page per query, from the shared metrics and the flags."""

import re

import pytest
from django.urls import reverse

import rollout
from query_backends.registry import REGISTRY
from rollout.models import QueryFlag
from rollout.reports import discrepancy_rate
from rollout.routing.actors import Actor
from rollout.shadow import guard
from rollout.shadow.queue import background

pytestmark = pytest.mark.django_db


def row(html, query):
    match = re.search(rf'<tr id="row-{query}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {query}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1)))


@pytest.mark.smoke
def test_the_overview_has_one_row_per_query_for_staff_only(admin_client, client):
    for _ in range(3):
        rollout.dispatch("web_capabilities", actor=Actor(person=1), root_id=1)
    page = admin_client.get(reverse("rollout-dashboard") + "?range=15m")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<tr id="row-') == len(REGISTRY.names())
    assert html.count('class="rollout-spark"') == len(REGISTRY.names())
    cells = row(html, "web_capabilities")
    assert "3 calls" in cells and "function 100% · twin 0%" in cells and "armed" in cells
    assert "no calls" in row(html, "bu_list")
    assert reverse("rollout-dashboard-query", args=["web_capabilities"]) in html
    assert client.get(reverse("rollout-dashboard")).status_code == 302  # to the login page


@pytest.fixture
def compared(broken_bu_list):
    for _ in range(4):
        rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1, fmt="array")
    background.drain()


def test_a_row_shows_the_discrepancy_rate_the_open_discrepancies_and_a_tripped_guard(admin_client, compared):
    guard.trip(QueryFlag.objects.get(name="orm.bu_list"), "discrepancy rate in a test")
    html = admin_client.get(reverse("rollout-dashboard")).content.decode()
    cells = row(html, "bu_list")
    assert "100 %" in cells and "4 compared" in cells
    # When in the row; why on hover (and in full on the query's page): the overview stays one screen.
    assert "tripped" in cells and "discrepancy rate in a test" not in cells
    assert re.search(r'title="tripped [^"]*: discrepancy rate in a test"', html)
    assert cells.rstrip().endswith("1")  # one open discrepancy (four occurrences of one kind)


@pytest.mark.parametrize("window", ["15m", "1h", "6h", "24h"])
def test_the_query_page_draws_three_charts_over_each_range(admin_client, compared, window):
    page = admin_client.get(reverse("rollout-dashboard-query", args=["bu_list"]) + f"?range={window}")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="rollout-chart"') == 3
    assert "<polyline" in html and "candidate for" not in html  # shadow only: the control serves everyone
    assert 'id="rollout-discrepancies"' in html


def test_a_shadow_note_says_what_is_compared_and_a_retired_query_has_none(admin_client):
    from django.utils import timezone

    QueryFlag.objects.filter(name__in=["orm.bu_list", "orm.web_capabilities"]).update(shadow_percent=100)
    QueryFlag.objects.filter(name="orm.web_capabilities").update(everyone=True, retired_at=timezone.now())
    html = admin_client.get(reverse("rollout-dashboard")).content.decode()
    assert "shadow 100 %" in row(html, "bu_list")
    # A capped note ("shadow 100 % → 0.57 % (budget)") wrapped and pushed the last row past 900 px: one line.
    assert re.search(r"small\.shadow \{ white-space: nowrap; \}", html)
    # Retired, its flag still says shadow 100 %, but the function is gone: no comparison happens.
    assert "shadow" not in row(html, "web_capabilities") and "(function retired)" in row(html, "web_capabilities")


def test_the_query_page_of_an_unknown_query_is_a_404(admin_client):
    assert admin_client.get(reverse("rollout-dashboard-query", args=["nope"])).status_code == 404


def test_the_discrepancy_rate_leaves_noise_out_and_is_none_before_any_comparison():
    assert discrepancy_rate({}) is None
    assert discrepancy_rate({"comparisons": 3, "noise": 3, "discrepancies": 0}) is None
    assert discrepancy_rate({"comparisons": 10, "noise": 2, "discrepancies": 2}) == 0.25
