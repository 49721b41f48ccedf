"""A real browser: log in, toggle a cohort, open the dashboard, open a discrepancy's diff. Screenshots in artifacts/."""

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

from query_backends.registry import REGISTRY
from rollout.models import Discrepancy, FlagChange, QueryFlag
from rollout.observation import Observation
from rollout.recorder import write
from rollout.result import Result
from tests.rollout_helpers import ROOT, committed, database_url, reset_flags

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    def prepare():
        User.objects.filter(username="browser").delete()
        User.objects.create_superuser("browser", password="browser-pw")
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
                    actor={"person_id": 1},
                    params={"bu_id": 1, "up": True, "down": True, "fmt": "text"},
                    difference=REGISTRY.get("bu_list").compare("1 2 3", "1 2"),
                    control=Observation("pg", value="1 2 3", duration=0.001),
                    candidate=Observation("orm", value="1 2", duration=0.002),
                )
            ]
        ).values()
        return discrepancy

    discrepancy = committed(prepare)
    port = free_port()
    environ = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "false"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}", discrepancy
    finally:
        process.terminate()
        process.wait(10)

        def cleanup():
            reset_flags()
            Discrepancy.objects.all().delete()
            User.objects.filter(username="browser").delete()

        committed(cleanup)


def test_an_operator_logs_in_toggles_a_cohort_reads_the_dashboard_and_a_diff(server):
    from playwright.sync_api import sync_playwright

    base, discrepancy = server
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
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", "browser")
        page.fill("#id_password", "browser-pw")
        page.click("input[type=submit]")
        flag = committed(lambda: QueryFlag.objects.get(name="orm.bu_list").pk)
        page.goto(f"{base}/admin/rollout/queryflag/{flag}/change/")
        page.fill("#id_sites", "4242")
        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist")
        page.screenshot(path=str(ARTIFACTS / "flag-saved.png"))
        page.goto(f"{base}/admin/rollout/dashboard/?range=15m")
        charts = page.locator("svg.rollout-chart")
        assert charts.count() >= 27 and page.locator("#panel-bu_list").is_visible()
        assert "candidate for sites [4242]" in page.locator("#panel-bu_list h2").inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        page.goto(f"{base}/admin/rollout/discrepancy/{discrepancy}/change/")
        diff = page.locator("table.rollout-diff")
        assert "function (control)" in diff.inner_text() and "1 2 3" in diff.inner_text()
        page.screenshot(path=str(ARTIFACTS / "discrepancy.png"), full_page=True)
        browser.close()
    change = committed(lambda: FlagChange.objects.filter(flag_name="orm.bu_list", source="admin").latest("id"))
    assert change.changes["sites"] == [[], [4242]] and change.user_id is not None
