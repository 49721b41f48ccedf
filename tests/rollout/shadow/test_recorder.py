"""Discrepancy records: purge and the cap on examples per fingerprint."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

import rollout
from rollout.models import Discrepancy
from rollout.shadow.queue import background
from tests.rollout.shadow.support import (
    ALICE,
    records,
    replace,
    shadow_all,
)
from tests.rollout_helpers import committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def test_purge_deletes_what_was_not_seen_for_days(monkeypatch):
    replace("bu_list", monkeypatch, twin=lambda bu_id, up=True, down=True, fmt="text": "wrong")
    shadow_all("bu_list")
    rollout.dispatch("bu_list", actor=ALICE, bu_id=2)
    background.drain()
    committed(lambda: Discrepancy.objects.update(last_seen=timezone.now() - timedelta(days=10)))

    def purge(days):  # committed, like an operator's command: the recorder's rows are not this test's
        out = io.StringIO()
        call_command("rollout", "purge", "--older-than", str(days), stdout=out)
        return out.getvalue()

    assert committed(purge, 30) == "deleted 0 discrepancies\n"
    assert committed(purge, 7) == "deleted 1 discrepancies\n"
    assert committed(lambda: Discrepancy.objects.count()) == 0


def test_examples_per_fingerprint_are_capped(monkeypatch, settings):
    settings.ROLLOUT_DISCREPANCIES_PER_FINGERPRINT = 3
    replace("bu_list", monkeypatch, twin=lambda bu_id, up=True, down=True, fmt="text": "wrong")
    shadow_all("bu_list")
    for bu_id in range(1, 8):
        rollout.dispatch("bu_list", actor=ALICE, bu_id=bu_id)
    background.drain()
    [record] = records("bu_list")
    assert record.occurrences == 7 and record.examples.count() == 3
