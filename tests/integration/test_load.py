"""A bounded load run in CI: the facts, not the timings — no errors and no discrepancies in any mode."""

import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from rollout.flags import transfer, writes
from rollout.models import Discrepancy
from tests.rollout_helpers import committed, free_port, reset_flags, run_in_process

RECORDED = {}


def forget():
    RECORDED["discrepancies"] = Discrepancy.objects.count()
    RECORDED["flags"] = transfer.export()
    RECORDED["load_user"] = User.objects.filter(username="loadtest").exists()
    Discrepancy.objects.all().delete()
    reset_flags()


def client_id():
    from query_backends.models import BusinessUnit

    return BusinessUnit.objects.filter(parent_id=-1, id__gt=0).order_by("id").values_list("id", flat=True)[0]


@pytest.mark.django_db
def test_a_short_load_in_every_mode_has_no_errors_and_no_discrepancies(tmp_path, no_discrepancies):
    report_path = tmp_path / "load.json"
    port = free_port()
    # The operator's own rollout state, which the run must put back as it found it.
    committed(writes.set_shadow, "bu_list", 7)
    committed(writes.change_cohort, "job_needs", "client", add=[committed(client_id)])
    flags_before = committed(transfer.export)
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
    assert RECORDED["flags"] == flags_before and not RECORDED["load_user"]  # nothing left behind
    if settings.REDIS_CONFIGURED:  # gunicorn workers' counts meet only in the shared store
        assert report["shadow"]["comparisons"] + report["shadow"]["drops"] > 0
