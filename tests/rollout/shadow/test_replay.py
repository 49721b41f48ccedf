"""Replay: a recorded discrepancy run again, now."""

import pytest
from django.core.management import call_command

import rollout
from query_backends.registry import REGISTRY
from rollout.shadow.queue import background
from tests.rollout.shadow.support import ALICE, records, replace, shadow_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_discrepancies")]


def test_replay_reproduces_a_difference_and_reports_agreement_once_fixed(monkeypatch, capsys):
    definition = replace("bu_list", monkeypatch, twin=lambda bu_id, up=True, down=True, fmt="text": "wrong")
    shadow_all("bu_list")
    rollout.dispatch("bu_list", actor=ALICE, bu_id=2)
    background.drain()
    [record] = records("bu_list")
    call_command("rollout", "replay", str(record.id))
    assert "they still differ" in capsys.readouterr().out
    monkeypatch.setitem(REGISTRY._definitions, "bu_list", definition)
    call_command("rollout", "replay", str(record.id))
    assert "now agree" in capsys.readouterr().out
