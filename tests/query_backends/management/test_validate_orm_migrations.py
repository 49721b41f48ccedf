import dataclasses
import json

import pytest
from django.core.management import CommandError, call_command

from query_backends.models import People
from query_backends.registry import REGISTRY
from rollout.validation import validate_query

pytestmark = pytest.mark.django_db


def test_validate_finds_no_difference_on_the_generated_world(tmp_path, capsys):
    report_path = tmp_path / "report.json"
    call_command("validate_orm_migrations", "--limit-per-query", "60", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    assert [r["query"] for r in report] == REGISTRY.names()
    assert all(r["cases"] > 0 and r["different"] == 0 and r["equal"] == r["cases"] for r in report)
    assert "agree on every case" in capsys.readouterr().out


def test_validate_reports_a_broken_twin_and_fails(tmp_path, monkeypatch):
    definition = REGISTRY.get("bu_list")

    def off_by_one(bu_id, up=True, down=True, fmt="text"):
        result = definition.twin(bu_id, up, down, fmt)
        return result[:-1] if isinstance(result, list) and len(result) > 1 else result

    monkeypatch.setitem(REGISTRY._definitions, "bu_list", dataclasses.replace(definition, twin=off_by_one))
    report_path = tmp_path / "report.json"
    with pytest.raises(CommandError, match="differ"):
        call_command("validate_orm_migrations", "--queries", "bu_list,web_capabilities", "--json", str(report_path))
    bu_list, web = json.loads(report_path.read_text())
    assert bu_list["different"] > 0 and web["different"] == 0
    [example] = bu_list["examples"].values()
    assert example["params"]["fmt"].lower() == "array"
    assert example["difference"]["missing"] == example["control"][-1:]


def test_validate_rejects_unknown_queries_and_bad_limits():
    with pytest.raises(CommandError, match="unknown query nope"):
        call_command("validate_orm_migrations", "--queries", "nope")
    with pytest.raises(CommandError, match="--limit-per-query"):
        call_command("validate_orm_migrations", "--limit-per-query", "0")


def test_sites_list_web_cases_ask_people_with_groups_under_another_client():
    home = dict(People.objects.values_list("id", "client_id"))
    grouped = {
        person
        for person, extras in People.objects.values_list("id", "people_extras")
        if (extras or {}).get("assignsitegroup", "").strip()
    }
    cross = [
        case
        for case in REGISTRY.get("sites_list_web").cases()
        if home[case["people_id"]] not in (None, case["client_id"]) and case["people_id"] in grouped
    ]
    assert len(cross) > 10
    report = validate_query("sites_list_web", cross)
    assert (report.cases, report.different) == (len(cross), 0)
