import json
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

import query_backends
from query_backends.errors import InvalidQueryParams, UnknownQuery
from query_backends.models import SitePeople
from query_backends.registry import REGISTRY
from tests.legacy_world import asset, bu, capability, db_now, group, jobneed, member, person, questionset

pytestmark = pytest.mark.django_db
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
GOOD = {
    "job_needs": {"people_id": 1, "bu_id": 1, "client_id": 1},
    "external_tour_job_needs": {"people_id": 1, "bu_id": 1, "client_id": 1},
    "schedule_for_adhoc": {"plandatetime": NOW, "bu_id": 1, "people_id": 1, "asset_id": 1, "questionset_id": 1},
    "bu_list": {"bu_id": 1},
    "bulist_by_identifier": {"bu_id": 1},
    "sites_list_web": {"client_id": 1, "people_id": 1},
    "asset_questionsets": {"site_id": 1, "asset_id": "1"},
    "asset_details": {"mdtz": NOW, "site_id": 1},
    "web_capabilities": {"root_id": 1},
}
BAD = [
    ("job_needs", "people_id", "12", "expected an integer"),
    ("job_needs", "bu_id", True, "expected an integer"),
    ("job_needs", "client_id", None, "must not be None"),
    ("job_needs", "people_id", 2**63, "64-bit"),
    ("job_needs", "people_id", -(2**63) - 1, "64-bit"),
    ("bu_list", "fmt", "xml", "not one of"),
    ("bu_list", "up", 1, "expected a boolean"),
    ("schedule_for_adhoc", "plandatetime", datetime(2024, 5, 1), "naive"),
    ("asset_details", "mdtz", "2024-05-01", "expected a datetime"),
    ("asset_questionsets", "asset_id", 5, "expected a string"),
    ("asset_questionsets", "type", "na\x00me", "NUL"),
    ("web_capabilities", "root_id", 1.0, "expected an integer"),
]


@pytest.mark.parametrize("backend", ["pg", "orm"])
@pytest.mark.parametrize("query,param,value,problem", BAD)
def test_bad_parameters_are_rejected_by_name_before_any_sql(query, param, value, problem, backend):
    with CaptureQueriesContext(connection) as queries, pytest.raises(InvalidQueryParams, match=problem) as caught:
        query_backends.run_query(query, backend, **{**GOOD[query], param: value})
    assert caught.value.param == param and param in str(caught.value)
    assert len(queries) == 0


@pytest.mark.parametrize("backend", ["pg", "orm"])
def test_missing_and_unknown_parameters_are_named(backend):
    with pytest.raises(InvalidQueryParams, match="'client_id': missing"):
        query_backends.run_query("job_needs", backend, people_id=1, bu_id=1)
    with pytest.raises(InvalidQueryParams, match="'site': unknown parameter"):
        query_backends.run_query("job_needs", backend, site=1, **GOOD["job_needs"])


def test_unknown_query_and_backend():
    with pytest.raises(UnknownQuery, match="unknown query 'nope'"):
        query_backends.run_query("nope", "pg")
    with pytest.raises(InvalidQueryParams, match="'backend'"):
        query_backends.run_query("bu_list", "mysql", bu_id=1)


def test_none_is_accepted_where_the_contract_allows_it():
    assert query_backends.run_query("bulist_by_identifier", "orm", bu_id=None) == ""


@pytest.fixture
def busy_site():
    """A site where every query returns rows, so counts are pinned on real work."""
    client = bu(kind="CLIENT")
    site = bu(parent=client)
    worker = person(client, site, groups="")
    team = group(client)
    member(team.id, worker.id)
    things = [asset(site) for _ in range(3)]
    qset = questionset(site, [t.id for t in things])
    for thing in things:
        jobneed(site, client, people=worker, asset=thing, qset=qset)
        jobneed(site, client, pgroup=team, identifier="EXTERNALTOUR")
    today = db_now().date()
    SitePeople.objects.create(people=worker, bu=site, client=client, fromdt=today, uptodt=today)
    menu = capability(cfor="WEB")
    capability(menu)
    return client, site, worker, things[0], qset, menu


EXPECTED_QUERIES = {
    "job_needs": 1,
    "external_tour_job_needs": 1,
    "schedule_for_adhoc": 1,
    "bu_list": 1,
    "bulist_by_identifier": 1,
    "sites_list_web": 1,
    "asset_questionsets": 1,
    "asset_details": 1,
    "web_capabilities": 1,
}


def test_each_twin_costs_a_fixed_number_of_queries(busy_site, django_assert_num_queries):
    client, site, worker, thing, qset, menu = busy_site
    params = {
        "job_needs": {"people_id": worker.id, "bu_id": site.id, "client_id": client.id},
        "external_tour_job_needs": {"people_id": worker.id, "bu_id": site.id, "client_id": client.id},
        "schedule_for_adhoc": {
            "plandatetime": db_now(),
            "bu_id": site.id,
            "people_id": worker.id,
            "asset_id": thing.id,
            "questionset_id": qset.id,
        },
        "bu_list": {"bu_id": client.id, "fmt": "jsonb"},
        "bulist_by_identifier": {"bu_id": client.id},
        "sites_list_web": {"client_id": client.id, "people_id": worker.id},
        "asset_questionsets": {"site_id": site.id, "asset_id": str(thing.id), "type": "name"},
        "asset_details": {"mdtz": NOW, "site_id": site.id},
        "web_capabilities": {"root_id": menu.id},
    }
    assert set(params) == set(REGISTRY.names())
    for name, kwargs in params.items():
        with django_assert_num_queries(EXPECTED_QUERIES[name]):
            result = query_backends.run_query(name, "orm", **kwargs)
        assert result, f"{name} returned nothing: the count would not be pinned on real work"
    admin = person(client, site, groups="", isadmin=True)
    with django_assert_num_queries(1):
        assert query_backends.run_query("sites_list_web", "orm", client_id=client.id, people_id=admin.id)
    for fmt in ("text", "array"):
        with django_assert_num_queries(1):
            assert query_backends.run_query("bu_list", "orm", bu_id=client.id, fmt=fmt)


def test_run_query_command_prints_json(busy_site, capsys):
    client, *_ = busy_site
    call_command("run_query", "bu_list", "--backend", "orm", "--param", f"bu_id={client.id}", "--param", "fmt=array")
    assert json.loads(capsys.readouterr().out)[0] == client.id


@pytest.mark.parametrize(
    "args,message",
    [
        (["bu_list", "--backend", "pg", "--param", "bu_id=abc"], "'bu_id': 'abc' is not an integer"),
        (["bu_list", "--backend", "pg", "--param", "bu_id"], "expected key=value"),
        (["nope", "--backend", "pg"], "unknown query 'nope'"),
        (["asset_details", "--backend", "orm", "--param", "site_id=1", "--param", "mdtz=2024-01-01"], "naive"),
    ],
)
def test_run_query_command_errors_are_messages(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("run_query", *args)
