import re

import pytest

from rollout.models import Discrepancy, QueryFlag
from tests.rollout_helpers import reset_flags, run_in_process


def forget_demo():
    Discrepancy.objects.all().delete()
    QueryFlag.objects.filter(name="orm.demo_broken_bu_list").delete()
    reset_flags()


@pytest.mark.django_db
def test_the_demo_rolls_out_stage_by_stage_and_the_guard_catches_the_broken_twin():
    code, out, err = run_in_process(
        "from django.core.management import call_command\n"
        "call_command('demo', scale='tiny', calls=120, skip_seed=True)\n",
        cleanup=forget_demo,
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
    real_stages = out.split("7. a broken twin")[0]
    counts = [int(n) for n in re.findall(r"discrepancies\s+(\d+)", real_stages)]
    assert len(counts) == 6 and set(counts) == {0}
    assert sum(int(n) for n in re.findall(r"comparisons\s+(\d+)", real_stages)) > 0
    assert "guard tripped: discrepancy rate" in out
    assert "demo_broken_bu_list now: control for everyone" in out
    assert "discrepancy #" in out and "admin login: admin /" in out
