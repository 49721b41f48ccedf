"""benchmark_orm_performance --explain: the generic plans of function, twin and floor, leaving nothing behind."""

import pytest
from django.core.management import call_command
from django.db import connection

from query_backends.explain import numbered, plans
from query_backends.models import Capability
from query_backends.registry import REGISTRY

pytestmark = pytest.mark.django_db


def test_placeholders_are_numbered_in_order_and_a_named_one_keeps_its_number():
    assert numbered("SELECT %s, %s WHERE x LIKE 'a%%'", [1, 2]) == ("SELECT $1, $2 WHERE x LIKE 'a%'", [1, 2])
    assert numbered("%(p)s = %(c)s OR %(p)s", {"p": 7, "c": 9}) == ("$1 = $2 OR $1", [7, 9])


def _root_with_a_grandchild():
    grandchildren = Capability.objects.filter(parent__parent__cfor="WEB", parent__parent__parent_id__isnull=True)
    return grandchildren.values_list("parent__parent_id", flat=True).first()


def test_the_web_menu_walk_probes_the_parent_index_and_never_hashes_the_table():
    root_id = _root_with_a_grandchild()
    assert root_id is not None, "the tiny world has no menu two levels deep"
    found = plans(REGISTRY.get("web_capabilities"), {"root_id": root_id})
    for side in ("twin", "floor"):
        text = "\n".join(found[side])
        assert "Nested Loop" in text and "Hash Join" not in text, text
        assert "parent_id = ANY (ARRAY[" in text and "(actual time=" in text, text
    # The function keeps the legacy join (a hash of the whole table per level), shown where auto_explain is
    # installed; the embedded PostgreSQL has no auto_explain, and the side says so instead of a plan.
    function = "\n".join(found["function"])
    assert "Hash Join" in function or function.startswith("no plan: auto_explain could not be loaded"), function


def test_the_external_tour_twin_never_ands_the_whole_client_bitmap():
    definition = REGISTRY.get("external_tour_job_needs")
    params = definition.clean(definition.sample(1)[0])
    lines = plans(definition, params)["twin"]
    assert any("client_id + " in line and "Filter:" in line for line in lines), lines
    assert not any("client_id" in line for line in lines if "Index Cond" in line or "Recheck Cond" in line), lines


def test_nothing_is_left_prepared_or_changed_in_the_session():
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        before = cursor.fetchone()
    call_command("benchmark_orm_performance", "--explain", "--queries", "bu_list,asset_questionsets")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'query_backends_explain'")
        assert cursor.fetchone() == (0,)
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == before


def test_the_command_prints_each_side_of_each_query(capsys):
    call_command("benchmark_orm_performance", "--explain", "--queries", "schedule_for_adhoc")
    out = capsys.readouterr().out
    assert out.startswith("== schedule_for_adhoc")
    assert [line for line in out.splitlines() if line.startswith("-- ")] == ["-- twin", "-- floor", "-- function"]
    assert out.count("Execution Time") == 2
