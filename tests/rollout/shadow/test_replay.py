"""Replay: a recorded discrepancy run again, now."""

import json

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


def test_the_replay_message_is_json_not_python_reprs(monkeypatch):
    from datetime import UTC, datetime

    from rollout.shadow.replay import replay

    moment = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
    replace("bu_list", monkeypatch, twin=lambda bu_id, up=True, down=True, fmt="text": [moment])
    shadow_all("bu_list")
    rollout.dispatch("bu_list", actor=ALICE, bu_id=2)
    background.drain()
    [record] = records("bu_list")
    outcome = replay(record.id)
    assert "2026-11-01 15:00:00+00:00" in outcome["text"]  # as the recorded example holds it
    assert "datetime" not in outcome["text"] and "True" not in outcome["text"] and "'" not in outcome["text"]
    assert outcome["diff"] == json.loads(outcome["text"].split("they still differ: ", 1)[1])
