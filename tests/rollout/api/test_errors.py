"""What an error means at the API is asked of the experiment: a host's own errors map without editing rollout."""

import pytest

from rollout.experiments import registry
from rollout.flags.cache import flags
from rollout.models import QueryFlag
from tests.toy import REGISTRY, ToyNegative

pytestmark = pytest.mark.django_db


@pytest.fixture
def toy(settings):
    settings.ROLLOUT_REGISTRY = "tests.toy.REGISTRY"
    registry.cache_clear()
    QueryFlag.objects.create(name="orm.toy", everyone=False)
    flags.invalidate()
    yield REGISTRY.get("toy")
    registry.cache_clear()
    flags.invalidate()


def test_an_error_the_experiment_classifies_gets_its_status_and_kind(toy, admin_client):
    response = admin_client.get("/api/queries/toy?n=-2")
    assert response.status_code == 422
    assert response.json() == {"error": "n is -2: the toy doubles only natural numbers", "kind": "negative"}


def test_an_error_nobody_classifies_is_a_logged_500(toy, admin_client, monkeypatch, caplog):
    monkeypatch.setattr(type(toy), "status_for", lambda self, exception: None)
    response = admin_client.get("/api/queries/toy?n=-2")
    assert response.status_code == 500 and response.json() == {"error": "internal error", "kind": "negative"}
    assert [r.exc_info[0] for r in caplog.records if r.name == "rollout.api"] == [ToyNegative]


def test_an_infrastructure_failure_the_experiment_names_is_a_503(toy, admin_client, monkeypatch):
    monkeypatch.setattr(type(toy), "status_for", lambda self, exception: None)
    monkeypatch.setattr(type(toy), "infrastructure_failure", lambda self, exception: True)
    response = admin_client.get("/api/queries/toy?n=-2")
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["kind"] == "negative"


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("invalid_params", 400),
        ("legacy_data", 422),
        ("timeout", 504),
        ("function_missing", 503),
        ("infrastructure", 503),
    ],
)
def test_the_legacy_domain_classifies_its_kinds(kind, status):
    from query_backends import errors
    from query_backends.registry import REGISTRY as LEGACY

    error = next(e for e in vars(errors).values() if isinstance(e, type) and getattr(e, "kind", None) == kind)
    instance = error.__new__(error)
    assert LEGACY.get("bu_list").status_for(instance) == (status, kind)
    assert LEGACY.get("bu_list").status_for(ValueError("not ours")) is None
