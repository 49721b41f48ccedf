"""Counts reach the rollups from every process that made calls, however short its life."""

import pytest
from django.db import models
from django.db.models import Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from rollout.models import MetricMinute
from tests.rollout_helpers import python_process


def calls_counted(query):
    rows = MetricMinute.objects.filter(query=query).annotate(n=Cast(KT("counts__calls"), models.IntegerField()))
    return rows.aggregate(total=Sum("n"))["total"] or 0


@pytest.mark.django_db
def test_a_process_that_exits_at_once_after_its_calls_still_counts_them():
    # A cron job or a management command: nine calls, then gone before the writer's first tick (1 s).
    before = calls_counted("bu_list")
    code = (
        "import rollout\n"
        "from rollout.routing.actors import Actor\n"
        "for _ in range(9):\n"
        "    rollout.dispatch('bu_list', actor=Actor(), bu_id=1, fmt='array')\n"
    )
    _, err = python_process(code).communicate(timeout=120)
    assert "Traceback" not in err, err
    assert calls_counted("bu_list") == before + 9
