"""A bounded load run in CI: the facts, not the timings — no errors and no discrepancies in any mode."""

import json

import pytest
from django.conf import settings

from rollout.models import Discrepancy
from tests.rollout_helpers import free_port, reset_flags, run_in_process

RECORDED = {}


def forget():
    RECORDED["discrepancies"] = Discrepancy.objects.count()
    Discrepancy.objects.all().delete()
    reset_flags()


@pytest.mark.django_db
def test_a_short_load_in_every_mode_has_no_errors_and_no_discrepancies(tmp_path, no_discrepancies):
    report_path = tmp_path / "load.json"
    port = free_port()
    code, out, err = run_in_process(
        "from django.core.management import call_command\n"
        f"call_command('loadtest', seconds=3, clients=8, workers=2, port={port}, json_path={str(report_path)!r})\n",
        cleanup=forget,
    )
    assert code == 0, err[-3000:]
    assert f"gunicorn on http://127.0.0.1:{port}/, 2 workers" in out  # --port, to run beside other servers
    report = json.loads(report_path.read_text())
    assert set(report) == {"pg", "orm", "shadow"}
    for mode, numbers in report.items():
        assert numbers["requests"] > 0 and numbers["errors"] == 0, (mode, numbers)
        assert numbers["discrepancies"] == 0 and numbers["record_failures"] == 0, (mode, numbers)
    assert set(report["pg"]["served_by"]) == {"pg"} and set(report["orm"]["served_by"]) == {"orm"}
    assert RECORDED["discrepancies"] == 0  # the records are in PostgreSQL, whatever the metrics store
    if settings.REDIS_CONFIGURED:  # gunicorn workers' counts meet only in the shared store
        assert report["shadow"]["comparisons"] + report["shadow"]["drops"] > 0
