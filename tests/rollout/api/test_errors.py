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


@pytest.fixture
def fresh_bursts():
    """Bursts outlive a test by design (30 s of quiet end one): each test here starts its own."""
    import logging

    from rollout.api import errors
    from rollout.outage import Burst

    errors._bursts.clear()
    for log_filter in logging.getLogger("django.security.DisallowedHost").filters:
        log_filter.burst = Burst(log_filter.burst.quiet)
    yield
    errors._bursts.clear()


def server_side(caplog):
    """(warnings, errors, tracebacks) logged under rollout and django while the test ran."""
    records = [r for r in caplog.records if r.name.startswith(("rollout", "django"))]
    return (
        [r.getMessage() for r in records if r.levelname == "WARNING"],
        [r.getMessage() for r in records if r.levelname == "ERROR"],
        [r for r in records if r.exc_info],
    )


@pytest.mark.usefixtures("fresh_bursts")
def test_a_burst_of_expected_503s_is_one_warning_without_a_traceback(toy, admin_client, monkeypatch, caplog):
    monkeypatch.setattr(type(toy), "status_for", lambda self, exception: (503, "function_missing"))
    statuses = {admin_client.get(f"/api/queries/toy?n=-{n}").status_code for n in range(1, 31)}
    warnings, errors, tracebacks = server_side(caplog)
    assert statuses == {503}
    assert warnings == [
        "query toy: 503 function_missing (n is -1: the toy doubles only natural numbers); "
        "more of these, of any query, are not logged until 30 s pass without one"
    ]
    assert errors == [] and tracebacks == []


@pytest.mark.usefixtures("fresh_bursts")
def test_a_burst_of_bad_host_headers_is_one_warning_without_a_traceback(client, caplog):
    responses = [
        client.get(path, HTTP_HOST="evil.example") for path in ["/api/queries/bu_list?bu_id=1", "/admin/"] * 10
    ]
    warnings, errors, tracebacks = server_side(caplog)
    assert {r.status_code for r in responses} == {400}
    assert responses[0].json() == {"error": "bad request"}  # under /api/ still JSON
    assert len(warnings) == 1 and "Host" in warnings[0] and "'evil.example'" in warnings[0], warnings
    assert errors == [] and tracebacks == []
