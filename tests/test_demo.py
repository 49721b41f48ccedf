import re

import pytest
from django.contrib.auth import authenticate
from django.utils import timezone

from rollout.models import Discrepancy, FlagChange, QueryFlag
from tests.rollout_helpers import ROOT, committed, reset_flags, run_in_process


def forget_demo(started):
    Discrepancy.objects.all().delete()
    QueryFlag.objects.filter(name="orm.demo_broken_bu_list").delete()
    reset_flags()
    # The demo's committed flag history (a guard trip on a loaded machine included) is not another test's.
    FlagChange.objects.filter(changed_at__gte=started).delete()


@pytest.mark.django_db
def test_the_demo_rolls_out_stage_by_stage_and_the_guard_catches_the_broken_twin():
    started = timezone.now()
    code, out, err = run_in_process(
        "from django.core.management import call_command\n"
        "call_command('demo', scale='tiny', calls=120, skip_seed=True)\n",
        cleanup=lambda: forget_demo(started),
    )
    assert code == 0, err[-3000:]
    for stage in (
        "1. PostgreSQL only",
        "2. shadow 100 %",
        "3. ORM for one site",
        "4. ORM for 10 %",
        "5. ORM for 50 %",
        "6. ORM for everyone",
        "7. a broken twin",
    ):
        assert stage in out
    assert "drops:" in out and "control = the PL/pgSQL function" in out  # the words are explained once
    real_stages = out.split("7. a broken twin")[0]
    counts = [int(n) for n in re.findall(r"discrepancies\s+(\d+)", real_stages)]
    assert len(counts) == 6 and set(counts) == {0}
    assert sum(int(n) for n in re.findall(r"comparisons\s+(\d+)", real_stages)) > 0
    assert "the guard caught it, as this stage intends: discrepancy rate" in out
    assert "demo_broken_bu_list now: control for everyone" in out
    assert "discrepancy #" in out
    # An expected trip is not an error: nothing alarming on either stream.
    assert "ERROR" not in out + err and "Warning" not in err
    # The demo-only query leaves nothing behind, and every real flag is back on the control.
    assert "tidied up" in out
    assert committed(lambda: not QueryFlag.objects.filter(name="orm.demo_broken_bu_list").exists())
    assert committed(lambda: not Discrepancy.objects.filter(query="demo_broken_bu_list").exists())
    assert committed(lambda: all(f.everyone is None and not f.shadow_percent for f in QueryFlag.objects.all()))
    # The login is stable: kept once in .data/, and it works.
    user, password = re.search(r"admin login: (\S+) / (\S+)", out).groups()
    assert (ROOT / ".data" / "demo-admin-password").read_text().strip() == password
    assert committed(lambda: authenticate(username=user, password=password) is not None)
