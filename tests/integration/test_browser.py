"""A real browser on the demo's own server (`demo --serve`): log in with the demo's login, read the overview at
1400×900, open a query's charts, toggle a cohort, replay a discrepancy. Screenshots in artifacts/."""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from query_backends.management.commands.demo import bring_back_retired
from query_backends.registry import REGISTRY
from rollout.models import Discrepancy, FlagChange, QueryFlag
from rollout.shadow.observation import Observation
from rollout.shadow.recorder import write
from rollout.shadow.result import Result
from tests.legacy_world import ids_of
from tests.rollout_helpers import ROOT, committed, database_url, free_port, reset_flags

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
LOGIN = ("browser", "browser-pw")
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


@pytest.fixture
def demo_server(tmp_path):
    def prepare():
        Discrepancy.objects.all().delete()
        [discrepancy] = write(
            [
                Result(
                    comparison_id=str(uuid.uuid4()),
                    query="bu_list",
                    flag="orm.bu_list",
                    kind="mismatch",
                    served_backend="pg",
                    candidate_backend="orm",
                    actor={"person": [1]},
                    params={"bu_id": 1, "up": True, "down": True, "fmt": "text"},
                    difference=REGISTRY.get("bu_list").compare("1 2 3", "1 2"),
                    control=Observation("pg", value="1 2 3", duration=0.001),
                    candidate=Observation("orm", value="1 2", duration=0.002),
                )
            ]
        ).values()
        return discrepancy

    started = timezone.now()
    discrepancy = committed(prepare)
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEMO_ADMIN_USER": LOGIN[0],
        "DEMO_ADMIN_PASSWORD": LOGIN[1],
    }
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--scale", "tiny", "--skip-seed", "--calls", "120", "--serve"]
        + ["--port", str(port)],
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    try:
        assert process.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
        yield f"http://127.0.0.1:{port}", discrepancy, (tmp_path / "demo.log")
    finally:
        process.terminate()
        process.wait(10)
        log.close()

        def cleanup():
            bring_back_retired()  # the function the demo dropped: later tests call it
            reset_flags()
            Discrepancy.objects.all().delete()
            User.objects.filter(username=LOGIN[0]).delete()
            # The demo's committed flag history (a guard trip on a loaded machine included) is not another test's.
            FlagChange.objects.filter(changed_at__gte=started).delete()

        committed(cleanup)


def test_an_operator_reads_the_demo_on_the_dashboard_toggles_a_cohort_and_replays_a_diff(demo_server):
    from playwright.sync_api import sync_playwright

    base, discrepancy, log = demo_server
    assert (
        f"Serving the dashboard: {base}/admin/rollout/dashboard/?range=15m  (login browser / $DEMO_ADMIN_PASSWORD)"
        in (log.read_text())
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/admin/login/?next=/admin/rollout/dashboard/")
        page.fill("#id_username", LOGIN[0])
        page.fill("#id_password", LOGIN[1])
        page.click("input[type=submit]")
        overview = page.locator("#rollout-overview")
        overview.wait_for()
        # The overview answers "is the rollout healthy?" without scrolling, with the demo's traffic in it.
        box = overview.bounding_box()
        assert box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1400
        # ... with the shadow budget's notes under the serving rules, each on one line.
        notes = page.locator("#rollout-overview small.shadow")
        assert notes.count() >= 6  # the budget's longer notes too (tests/rollout/dashboard/test_views.py)
        line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('small.shadow')).lineHeight) || 16")
        assert all(note.bounding_box()["height"] < 1.5 * line for note in notes.all())
        # ... with the demo's tenth query, its guard tripped, in it too.
        assert page.locator("#rollout-overview tbody tr").count() >= 10
        assert "tripped" in page.locator("#row-demo_broken_bu_list .rollout-tripped").inner_text()
        # ... and the query whose function the demo retired last (unless the guard sent its twin back first).
        retired = page.locator("#row-web_capabilities").inner_text()
        assert "retired for" in retired or "tripped" in retired
        assert "calls" in page.locator("#row-bu_list").inner_text()
        assert "0 calls" not in page.locator("#row-bu_list").inner_text()
        assert page.locator("#row-bu_list svg.rollout-share").count() == 1
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        page.click("#row-bu_list a >> nth=0")
        page.wait_for_selector("svg.rollout-chart")
        assert page.locator("svg.rollout-chart").count() == 3
        assert page.locator("svg.rollout-chart polyline").count() > 0
        page.click("text=24h")
        page.wait_for_selector("svg.rollout-chart")
        page.click("text=1h")
        page.wait_for_selector("svg.rollout-chart")
        page.screenshot(path=str(ARTIFACTS / "dashboard-query.png"))
        # The flag list at 1400 px: "serving" on one line, the last column inside the window.
        page.goto(f"{base}/admin/rollout/queryflag/")
        serving = page.locator("#result_list tbody tr", has_text="orm.bu_list").locator("td.field-serving span")
        line = page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight) || 20")
        assert serving.inner_text() == "candidate for everyone" and serving.bounding_box()["height"] < 1.5 * line
        last = page.locator("#result_list thead th").last.bounding_box()
        assert last["x"] + last["width"] <= 1400
        page.screenshot(path=str(ARTIFACTS / "flags.png"))
        # The demo left bu_list's twin serving everyone (stage 6): back to the cohort rules, a site is toggled.
        flag = committed(lambda: (reset_flags(), QueryFlag.objects.get(name="orm.bu_list").pk)[1])
        (site,) = committed(lambda: ids_of("SITE", 1))
        page.goto(f"{base}/admin/rollout/queryflag/{flag}/change/")
        page.fill("#id_cohort__site", str(site))
        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist")
        page.screenshot(path=str(ARTIFACTS / "flag-saved.png"))
        page.goto(f"{base}/admin/rollout/dashboard/")
        assert f"site [{site}]" in page.locator("#row-bu_list td.serving").inner_text()
        page.goto(f"{base}/admin/rollout/discrepancy/{discrepancy}/change/")
        diff = page.locator("table.rollout-diff")
        assert "function (control)" in diff.inner_text() and "1 2 3" in diff.inner_text()
        page.click("#replay-now")
        page.wait_for_selector(".messagelist")
        assert "now agree" in page.locator(".messagelist").inner_text()  # the real twin is right
        page.screenshot(path=str(ARTIFACTS / "discrepancy.png"), full_page=True)
        browser.close()
    change = committed(lambda: FlagChange.objects.filter(flag_name="orm.bu_list", source="admin").latest("id"))
    assert change.changes["cohorts"] == [{}, {"site": [site]}] and change.user_id is not None
