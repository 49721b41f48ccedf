"""A query is defined in one place: its definition carries its cases, its sampler and its floor, and a
system check says when the pieces disagree. A tenth query, defined here, gets everything else for free."""

import dataclasses
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from query_backends import models as m
from query_backends.checks import definitions_agree
from query_backends.floor import Floor
from query_backends.functions import BIGINT, TEXT, LegacyFunction
from query_backends.registry import REGISTRY, QueryDefinition
from rollout.checks import flags_exist
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.params import Param

pytestmark = pytest.mark.django_db


def test_every_registered_query_has_what_it_needs():
    assert definitions_agree() == []
    for definition in REGISTRY:
        assert definition.problems() == [], definition.name
        assert list(definition.cases()), definition.name  # the tiny world offers every query cases


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"twin": lambda bu_id: []}, "twin cannot take the parameters"),
        ({"function": REGISTRY.get("web_capabilities").function}, "takes (bigint) but the parameters"),
        ({"floor": Floor(sql="SELECT %(bu)s, %(x)s", arguments={"bu": "bu_id"})}, "x have no argument"),
        ({"floor": Floor(sql="SELECT %(bu)s", arguments={"bu": "site_id"})}, "unknown parameter(s) site_id"),
        ({"floor": Floor(sql="SELECT 1", arguments={"bu": "bu_id"})}, "bu appear nowhere"),
        ({"reads": ()}, "must name the tables it reads"),
        ({"cache": "weekly"}, "cache 'weekly' is not one of"),
        ({"batch": ("nope", lambda values, **others: {})}, "batch parameter 'nope'"),
        ({"samples": None}, "samples is not callable"),
    ],
)
def test_the_check_names_each_piece_that_disagrees(change, problem):
    broken = dataclasses.replace(REGISTRY.get("bu_list"), **change)
    [error] = definitions_agree(registry=[broken])
    assert error.id == "query_backends.E001" and "'bu_list'" in error.msg and problem in error.msg


def test_a_definition_takes_keyword_arguments_only():
    fields = {f.name: getattr(REGISTRY.get("bu_list"), f.name) for f in dataclasses.fields(QueryDefinition)}
    with pytest.raises(TypeError):
        QueryDefinition(*fields.values())


# The tenth query: one SQL function, one twin, one definition — nothing else anywhere.
CHILD_UNITS_SQL = """CREATE FUNCTION fn_child_units(p_bu_id bigint, p_prefix text)
    RETURNS TABLE(id bigint, bucode text) LANGUAGE sql STABLE AS $$
    SELECT b.id, b.bucode::text FROM bt b WHERE b.parent_id = p_bu_id AND b.bucode LIKE p_prefix || '%' ORDER BY b.id
$$"""


def child_units(bu_id, prefix=""):
    units = m.BusinessUnit.objects.filter(parent_id=bu_id, bucode__startswith=prefix).order_by("id")
    return list(units.values("id", "bucode"))


CHILD_UNITS = QueryDefinition(
    name="child_units",
    description="The units right under a business unit.",
    params=(Param("bu_id", int), Param("prefix", str, "")),
    function=LegacyFunction("fn_child_units", (BIGINT, TEXT), returns_rows=True),
    twin=child_units,
    ordered=True,
    reads=("bt",),
    cases=lambda: ({"bu_id": bu} for bu in m.BusinessUnit.objects.values_list("id", flat=True)),
    samples=lambda sampling: [{"bu_id": bu} for (bu,) in sampling.pick("SELECT id FROM bt WHERE parent_id = -1")],
    floor=Floor(
        sql="SELECT id, bucode FROM bt WHERE parent_id = %(bu)s AND bucode LIKE %(prefix)s ORDER BY id",
        arguments={"bu": "bu_id", "prefix": lambda p: p["prefix"] + "%"},
    ),
)


@pytest.fixture
def tenth_query():
    with connection.cursor() as cursor:
        cursor.execute(CHILD_UNITS_SQL)  # in the test's transaction: rolled back with it
    REGISTRY.register(CHILD_UNITS)
    yield CHILD_UNITS
    REGISTRY.unregister(CHILD_UNITS.name)
    flags.invalidate()


def test_a_tenth_query_gets_validation_benchmark_flag_api_and_dashboard(tenth_query, tmp_path, client, admin_client):
    assert definitions_agree() == []

    validation = tmp_path / "validation.json"
    call_command("validate_orm_migrations", "--queries", "child_units", "--json", str(validation))
    [report] = json.loads(validation.read_text())
    assert report["cases"] == m.BusinessUnit.objects.count() and report["equal"] == report["cases"]

    benchmark = tmp_path / "benchmark.json"
    call_command(
        "benchmark_orm_performance",
        *("--queries", "child_units", "--iterations", "4", "--warmup", "1", "--skip-router", "--json", str(benchmark)),
    )
    [result] = json.loads(benchmark.read_text())["queries"]
    assert {"function", "twin", "floor", "redis_hit"} <= set(result["sides"])
    assert result["twin/function"] > 0 and result["redis_hit/function"] > 0

    assert writes.ensure_flags() == ["child_units"]  # what `migrate` runs
    assert not [w for w in flags_exist() if "child_units" in w.msg]

    person = m.People.objects.filter(loginid__isnull=False, client_id__isnull=False).order_by("id").first()
    user = User.objects.create_user(person.loginid, password="pw")
    client.force_login(user)
    expected = CHILD_UNITS.run("pg", CHILD_UNITS.clean({"bu_id": person.client_id}))
    assert expected, "the client has units under it"
    response = client.get(reverse("api-query", args=["child_units"]), {"bu_id": person.client_id})
    assert response.status_code == 200 and response.json()["result"] == expected
    assert response["X-Rollout-Backend"] == "pg"
    writes.enable(["child_units"])
    flags.invalidate()
    response = client.get(reverse("api-query", args=["child_units"]), {"bu_id": person.client_id})
    assert response["X-Rollout-Backend"] == "orm" and response.json()["result"] == expected
    response = client.get(reverse("api-query", args=["child_units"]), {"bu_id": "x"})
    assert response.status_code == 400 and response.json()["parameter"] == "bu_id"

    page = admin_client.get(reverse("rollout-dashboard") + "?range=15m")
    assert page.status_code == 200 and '<tr id="row-child_units">' in page.content.decode()
    page = admin_client.get(reverse("rollout-dashboard-query", args=["child_units"]) + "?range=15m")
    assert page.status_code == 200 and "child_units" in page.content.decode()
