"""A bounded load run in CI: the facts, not the timings — no errors and no discrepancies in any mode."""

import json
import subprocess

import pytest

from rollout.models import Discrepancy
from tests.rollout_helpers import committed, python_process, reset_flags


def forget():
    Discrepancy.objects.all().delete()
    reset_flags()


@pytest.mark.django_db
def test_a_short_load_in_every_mode_has_no_errors_and_no_discrepancies(tmp_path):
    report_path = tmp_path / "load.json"
    run = python_process(
        "from django.core.management import call_command\n"
        f"call_command('loadtest', seconds=3, clients=8, workers=2, json_path={str(report_path)!r})\n"
    )
    try:
        out, err = run.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        run.kill()
        raise
    finally:
        committed(forget)
    assert run.returncode == 0, err[-3000:]
    report = json.loads(report_path.read_text())
    assert set(report) == {"pg", "orm", "shadow"}
    for mode, numbers in report.items():
        assert numbers["requests"] > 0 and numbers["errors"] == 0, (mode, numbers)
        assert numbers["discrepancies"] == 0 and numbers["record_failures"] == 0, (mode, numbers)
    assert set(report["pg"]["served_by"]) == {"pg"} and set(report["orm"]["served_by"]) == {"orm"}
    assert report["shadow"]["comparisons"] + report["shadow"]["drops"] > 0
