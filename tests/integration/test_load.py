"""A bounded load run in CI: the facts, not the timings — no errors and no discrepancies in any mode."""

import io
import json
import socket

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from rollout.flags import transfer, writes
from rollout.models import ApiToken, Discrepancy
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


@pytest.fixture
def taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["loadtest", "terminate_under_load", "demo"])
def test_a_taken_port_is_refused_before_anything_is_made(command, taken_port):
    """Not a token issued, not a request sent to whatever already listens there (it answered as gunicorn)."""
    tokens = ApiToken.objects.count()
    options = {"serve": True} if command == "demo" else {"seconds": 1}
    with pytest.raises(
        CommandError, match=rf"^--port: cannot listen on 127\.0\.0\.1:{taken_port} \(.+\); give another$"
    ):
        call_command(command, port=taken_port, stdout=io.StringIO(), **options)
    with pytest.raises(CommandError, match=r"^--port: 70000 is not between 1 and 65535$"):
        call_command(command, port=70000, stdout=io.StringIO(), **options)
    assert ApiToken.objects.count() == tokens and not User.objects.filter(username="loadtest").exists()


@pytest.mark.django_db
def test_a_gunicorn_that_does_not_start_leaves_no_token_user_or_flag_change(monkeypatch):
    from query_backends.management.commands import loadtest

    def exits_at_start(self, port, workers):
        raise CommandError(f"gunicorn exited at start (is port {port} taken?)")

    monkeypatch.setattr(loadtest.Command, "start_gunicorn", exits_at_start)
    flags_before, tokens = transfer.export(), ApiToken.objects.count()
    with pytest.raises(CommandError, match="gunicorn exited at start"):
        call_command("loadtest", seconds=1, stdout=io.StringIO())
    assert ApiToken.objects.count() == tokens
    assert not User.objects.filter(username="loadtest").exists() and transfer.export() == flags_before
