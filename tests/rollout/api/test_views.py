import json
import tracemalloc
from datetime import UTC, date, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse

import rollout
from query_backends import models as m
from query_backends.registry import REGISTRY
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.models import ApiToken
from rollout.routing.actors import Actor

pytestmark = pytest.mark.django_db
SINCE = "2000-01-01T00:00:00+00:00"
STREAM_BOUND = 2 * 1024 * 1024  # bytes the streamed encoding may hold at once (a few hundred rows)


def url(name, **params):
    from urllib.parse import urlencode

    return reverse("api-query", args=[name]) + ("?" + urlencode(params) if params else "")


@pytest.fixture
def world():
    """Two clients of the generated world: a user's own, and another."""
    person = m.People.objects.filter(loginid__isnull=False, client_id__isnull=False, bu_id__gt=0).order_by("id").first()
    own = person.client_id
    other = m.BusinessUnit.objects.filter(parent_id=-1).exclude(id=own).order_by("id").first().id
    site = {
        c: m.BusinessUnit.objects.filter(parent_id=c, identifier__tacode="SITE").first()
        or m.BusinessUnit.objects.filter(parent__parent_id=c, identifier__tacode="SITE").first()
        for c in (own, other)
    }
    asset = {c: m.Asset.objects.filter(client_id=c).first() for c in (own, other)}
    caps = {c: m.Capability.objects.filter(client_id=c, cfor="WEB", parent=None).first() for c in (own, other)}
    qsets = {c: m.QuestionSet.objects.filter(client_id=c).first() for c in (own, other)}
    user = User.objects.create_user(person.loginid, password="pw")
    other_person = m.People.objects.filter(client_id=other).first()
    return {
        "person": person,
        "own": own,
        "other": other,
        "site": site,
        "asset": asset,
        "caps": caps,
        "user": user,
        "other_person": other_person,
        "qsets": qsets,
    }


def params_for(w, client):
    mine = client == w["own"]
    person = w["person"].id if mine else w["other_person"].id
    site, asset = w["site"][client].id, w["asset"][client]
    return {
        "job_needs": {"people_id": person, "bu_id": site, "client_id": client},
        "external_tour_job_needs": {"people_id": person, "bu_id": site, "client_id": client},
        "schedule_for_adhoc": {
            "plandatetime": datetime.now(UTC).isoformat(),
            "bu_id": site,
            "people_id": person,
            "asset_id": asset.id,
            "questionset_id": w["qsets"][client].id,
        },
        "bu_list": {"bu_id": client, "fmt": "array"},
        "bulist_by_identifier": {"bu_id": client},
        "sites_list_web": {"client_id": client, "people_id": person},
        "asset_questionsets": {"site_id": asset.bu_id, "asset_id": str(asset.id)},
        "asset_details": {"mdtz": SINCE, "site_id": site},
        "web_capabilities": {"root_id": w["caps"][client].id},
    }


def test_unauthenticated_is_401(client):
    response = client.get(url("bu_list", bu_id=1))
    assert response.status_code == 401 and "authentication required" in response.json()["error"]
    assert client.get(url("bu_list", bu_id=1), HTTP_AUTHORIZATION="Token nope").status_code == 401


def test_token_and_session_auth_serve_through_the_router_and_name_the_backend(client, world):
    key = ApiToken.issue(world["user"])
    response = client.get(url("bu_list", bu_id=world["own"], fmt="array"), HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200 and response["X-Rollout-Backend"] == "pg"
    expected = REGISTRY.get("bu_list").run("pg", {"bu_id": world["own"], "up": True, "down": True, "fmt": "array"})
    assert response.json() == {"query": "bu_list", "backend": "pg", "result": expected}
    writes.change_cohort("bu_list", "client", add=[world["own"]])
    flags.invalidate()
    client.login(username=world["user"].username, password="pw")
    response = client.get(url("bu_list", bu_id=world["own"], fmt="array"))
    assert response["X-Rollout-Backend"] == "orm" and response.json()["result"] == expected


def test_unknown_query_is_404_and_bad_parameters_are_400_naming_them(client, world):
    client.login(username=world["user"].username, password="pw")
    assert client.get(url("nope")).status_code == 404
    for params, name in (
        ({"bu_id": "x"}, "bu_id"),
        ({}, "bu_id"),
        ({"bu_id": 1, "fmt": "xml"}, "fmt"),
        ({"bu_id": 2**70}, "bu_id"),
        ({"bu_id": 1, "extra": 1}, "extra"),
        ({"bu_id": "1\x00"}, "bu_id"),
    ):
        response = client.get(url("bu_list", **params))
        assert response.status_code == 400, params
        assert response.json()["parameter"] == name and name in response.json()["error"]
    response = client.get(url("asset_details", site_id=1, mdtz="yesterday"))
    assert response.status_code == 400 and response.json()["parameter"] == "mdtz"
    # A parameter given twice was served with its last value: `site_id=1&site_id=2` asked for one site's rows.
    response = client.get(reverse("api-query", args=["bu_list"]) + f"?bu_id={world['own']}&bu_id={world['own']}")
    assert response.status_code == 400 and response.json()["parameter"] == "bu_id"
    assert "given 2 times" in response.json()["error"]


@pytest.mark.parametrize("query", REGISTRY.names())
def test_tenant_isolation_for_every_query(client, world, query):
    client.login(username=world["user"].username, password="pw")
    own = client.get(url(query, **params_for(world, world["own"])[query]))
    assert own.status_code == 200, own.content
    foreign = client.get(url(query, **params_for(world, world["other"])[query]))
    assert foreign.status_code == 403 and "outside your client" in foreign.json()["error"]


def test_the_sentinel_and_unknown_ids_belong_to_no_one(client, world):
    client.login(username=world["user"].username, password="pw")
    assert client.get(url("bu_list", bu_id=-1)).status_code == 403
    assert client.get(url("bu_list", bu_id=10**12)).status_code == 403


def test_staff_with_the_permission_may_ask_about_any_client(client, world):
    world["user"].user_permissions.add(Permission.objects.get(codename="query_any_tenant"))
    client.login(username=world["user"].username, password="pw")
    assert client.get(url("bu_list", bu_id=world["other"])).status_code == 200


def test_legacy_data_errors_are_422_not_500(client, world):
    broken = m.People.objects.create(
        peoplecode="X", peoplename="X", client_id=world["own"], people_extras={"assignsitegroup": "1 x"}
    )
    client.login(username=world["user"].username, password="pw")
    response = client.get(url("sites_list_web", client_id=world["own"], people_id=broken.id))
    assert response.status_code == 422 and response.json()["kind"] == "legacy_data"


def test_metrics_are_prometheus_text_for_allowed_callers(client, settings):
    rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1)
    response = client.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'rollout_calls_total{backend="pg",query="bu_list",role="control"} 1.0' in body
    assert 'rollout_latency_seconds{backend="pg",quantile="0.50",query="bu_list",role="control"}' in body
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    settings.ROLLOUT_METRICS_ALLOWED_IPS = ("10.1.0.0/16",)
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    settings.ROLLOUT_METRICS_ALLOWED_IPS = ("127.0.0.1", "::1")
    settings.ROLLOUT_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer nope").status_code == 403


def token_header(world):
    return {"HTTP_AUTHORIZATION": f"Token {ApiToken.issue(world['user'])}"}


def assert_json_error(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json") and response.json()["error"]
    return response.json()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_a_wrong_method_is_a_json_405_with_allow_even_with_a_token(world, method):
    csrf_client = Client(enforce_csrf_checks=True)
    response = getattr(csrf_client, method)(url("bu_list", bu_id=world["own"]), **token_header(world))
    body = assert_json_error(response, 405)
    assert response["Allow"] == "GET" and body["parameter"] == "method"


def test_too_many_query_fields_is_a_json_400_naming_the_limit(client, world, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    fields = "&".join(f"f{i}=1" for i in range(51))
    body = assert_json_error(client.get(f"{url('bu_list')}?bu_id=1&{fields}", **token_header(world)), 400)
    assert body["limit"] == {"setting": "DATA_UPLOAD_MAX_NUMBER_FIELDS", "value": 50}
    assert "50" in body["error"]


def test_an_integer_of_thousands_of_digits_is_a_400_naming_the_parameter(client, world):
    body = assert_json_error(client.get(url("bu_list", bu_id="9" * 4301), **token_header(world)), 400)
    assert body["parameter"] == "bu_id" and "64-bit range" in body["error"] and str(2**63 - 1) in body["error"]
    assert len(body["error"]) < 200  # the input is not echoed back


def test_an_unknown_api_url_and_an_unknown_host_are_json(client, world, settings):
    assert_json_error(client.get("/api/nothing-here"), 404)
    settings.ALLOWED_HOSTS = ["only.example"]
    assert_json_error(client.get(url("bu_list", bu_id=1), **token_header(world)), 400)


def test_a_database_error_at_the_token_lookup_is_json_not_a_debug_page(client, world):
    header = token_header(world)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE rollout_apitoken RENAME TO rollout_apitoken_gone")
    body = assert_json_error(client.get(url("bu_list", bu_id=world["own"]), **header), 500)
    assert body["error"] == "internal error"


def cross_client_site(world):
    """A current sitepeople row tying the (non-admin) user's person to a site of the other client."""
    person = world["person"]
    m.People.objects.filter(id=person.id).update(isadmin=False)
    foreign_site = world["site"][world["other"]]
    today = date.today()
    m.SitePeople.objects.create(
        people_id=person.id, bu_id=foreign_site.id, client_id=world["other"], fromdt=today, uptodt=today
    )
    return foreign_site


def test_a_cross_client_sitepeople_link_returns_no_row_of_the_other_client(client, world, caplog):
    foreign_site = cross_client_site(world)
    params = {"client_id": world["own"], "people_id": world["person"].id}
    legacy_answer = rollout.dispatch("sites_list_web", **params)
    assert foreign_site.id in {row["id"] for row in legacy_answer}  # the legacy contract is unchanged
    response = client.get(url("sites_list_web", **params), **token_header(world))
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["result"]}
    assert foreign_site.id not in ids and ids == {row["id"] for row in legacy_answer} - {foreign_site.id}
    assert metrics.snapshot()[("sites_list_web", "pg")]["tenant_filtered"] == 1
    logged = [r.getMessage() for r in caplog.records if "another client" in r.getMessage()]
    assert logged == ["query sites_list_web: 1 part(s) of another client removed from the answer"]


def test_the_any_tenant_permission_sees_every_row(client, world):
    foreign_site = cross_client_site(world)
    world["user"].user_permissions.add(Permission.objects.get(codename="query_any_tenant"))
    response = client.get(
        url("sites_list_web", client_id=world["own"], people_id=world["person"].id), **token_header(world)
    )
    assert foreign_site.id in {row["id"] for row in response.json()["result"]}


def test_a_large_answer_is_streamed_with_bounded_memory(client, world, tmp_path):
    """20,000 assets on one site: the encoding holds a chunk of rows at a time, never the whole text."""
    site = world["site"][world["own"]]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO asset (uuid, assetcode, assetname, enable, iscritical, identifier, bu_id, client_id,"
            " ctzoffset, cdtz, mdtz) SELECT gen_random_uuid(), 'BULK' || i, 'bulk asset ' || i, true, false,"
            " 'ASSET', %s, %s, 0, now(), now() FROM generate_series(1, 20000) AS i",
            [site.id, world["own"]],
        )
    writes.enable(["asset_details"])
    flags.invalidate()
    response = client.get(url("asset_details", mdtz=SINCE, site_id=site.id), **token_header(world))
    assert response.status_code == 200 and response.streaming
    body = tmp_path / "answer.json"
    tracemalloc.start()
    with body.open("wb") as out:
        for chunk in response.streaming_content:
            out.write(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    answer = json.loads(body.read_text())
    assert len(answer["result"]) >= 20000 and answer["backend"] == "orm"
    assert body.stat().st_size > 4 * STREAM_BOUND and peak < STREAM_BOUND, peak
