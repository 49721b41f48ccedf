"""Big shapes (a client with 200,000 units, a site with thousands of assets): equal answers, no id lists sent."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from query_backends import generator
from query_backends.registry import REGISTRY
from tests.legacy_world import both

pytestmark = pytest.mark.django_db
BIG_TREE = 200_000


@pytest.fixture(autouse=True)
def patient_statements():
    """Django checks the deferred foreign keys of every loaded row at teardown (SET CONSTRAINTS ALL IMMEDIATE):
    for 200,000 rows on a loaded machine that outlasts the service's 5 s statement_timeout. SET LOCAL lasts
    until the test's transaction is rolled back, so only these tests wait longer."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '300s'")


def twin_statements(query, **params):
    definition = REGISTRY.get(query)
    with CaptureQueriesContext(connection) as captured:
        answer = definition.run("orm", definition.clean(params))
    return answer, [q["sql"] for q in captured.captured_queries]


def test_bu_list_of_a_client_with_200000_units_is_equal_in_every_format_and_sends_no_id_list():
    ids, counts = generator.bu_tree(BIG_TREE)
    assert counts["bt"] == BIG_TREE
    client = ids["client_id"]
    for fmt in ("text", "array", "jsonb"):
        control, candidate, difference = both("bu_list", bu_id=client, fmt=fmt)
        assert not isinstance(control, BaseException), control
        assert difference.equal, f"{fmt}: {difference.as_dict()}"
    assert len(candidate) == len(control) == BIG_TREE
    _, statements = twin_statements("bu_list", bu_id=client, fmt="jsonb")
    # One statement whose text does not grow with the tree (an id list inlined or bound would).
    assert len(statements) == 1 and len(statements[0]) < 5_000


def test_sites_list_web_for_the_admin_of_a_big_tree_is_equal_and_sends_no_id_list():
    ids, _ = generator.bu_tree(20_000, seed=1)
    control, _, difference = both("sites_list_web", client_id=ids["client_id"], people_id=ids["admin_id"])
    assert difference.equal and len(control) > 18_000
    _, statements = twin_statements("sites_list_web", client_id=ids["client_id"], people_id=ids["admin_id"])
    assert all(len(sql) < 5_000 for sql in statements)


def test_asset_details_of_a_site_with_many_assets_is_equal_and_sends_no_id_list():
    ids, counts = generator.site_assets(5_000)
    assert counts["asset"] == 5_000 and counts["questionset"] == 100
    control, _, difference = both(
        "asset_details", mdtz=generator.datetime(2000, 1, 1, tzinfo=generator.UTC), site_id=ids["site_id"]
    )
    assert difference.equal and len(control) > 3_000
    assert sum(bool(row["qsetids"]) for row in control) > 100
    _, statements = twin_statements(
        "asset_details", mdtz=generator.datetime(2000, 1, 1, tzinfo=generator.UTC), site_id=ids["site_id"]
    )
    assert all(len(sql) < 5_000 for sql in statements)


def test_shapes_are_rejected_with_a_message_naming_the_option():
    with pytest.raises(ValueError, match="--shape"):
        generator.load_shape("bu-tree:0")
    with pytest.raises(ValueError, match="--shape"):
        generator.load_shape("forest:10")


def test_seed_command_adds_shapes_and_names_a_bad_one(capsys):
    from django.core.management import CommandError, call_command

    from query_backends.models import Asset, BusinessUnit

    units, assets = BusinessUnit.objects.count(), Asset.objects.count()
    call_command("seed_demo_data", "--shape", "bu-tree:50", "--shape", "site-assets:30")
    assert (BusinessUnit.objects.count(), Asset.objects.count()) == (units + 50 + 3, assets + 30)
    out = capsys.readouterr().out
    assert "Loaded shape bu-tree:50" in out and "site_id=" in out and "id_ranges" not in out
    with pytest.raises(CommandError, match="--shape"):
        call_command("seed_demo_data", "--shape", "bu-tree:x")
