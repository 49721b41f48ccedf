"""Callers are cached, and a revoked token or a changed permission takes effect within the flag recheck bound."""

import time

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection

from query_backends import models as m
from rollout.api import tokens
from rollout.api.auth import callers
from rollout.models import ApiToken
from tests.rollout_helpers import committed, run_in_process

pytestmark = pytest.mark.django_db
BOUND = 0.3  # ROLLOUT_FLAG_RECHECK_SECONDS for these tests


@pytest.fixture
def caller(settings):
    """A token of the user of a legacy person, and the person's client and another client."""
    settings.ROLLOUT_FLAG_RECHECK_SECONDS = BOUND
    callers.clear()
    person = m.People.objects.filter(loginid__isnull=False, client_id__gt=0, bu_id__gt=0).order_by("id").first()
    other = m.BusinessUnit.objects.filter(parent_id=-1).exclude(id=person.client_id).order_by("id").first()
    user = User.objects.create_user(person.loginid)
    yield {"user": user, "key": ApiToken.issue(user), "own": person.client_id, "other": other.id}
    callers.clear()


def status(client, key, bu_id):
    return client.get(f"/api/queries/bu_list?bu_id={bu_id}", HTTP_AUTHORIZATION=f"Token {key}").status_code


def test_a_token_revoked_here_is_refused_at_once(client, caller, django_capture_on_commit_callbacks):
    assert status(client, caller["key"], caller["own"]) == 200
    with django_capture_on_commit_callbacks(execute=True):
        tokens.revoke(ApiToken.objects.get(user=caller["user"]).pk)
    assert status(client, caller["key"], caller["own"]) == 401


def test_a_token_deleted_elsewhere_is_refused_within_the_bound(client, caller, settings):
    """No signal reaches this process (another process, or SQL): the cached caller expires."""

    def delete_tokens_by_sql():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM rollout_apitoken WHERE user_id = %s", [caller["user"].pk])

    assert status(client, caller["key"], caller["own"]) == 200
    delete_tokens_by_sql()
    time.sleep(BOUND * 1.5)
    assert status(client, caller["key"], caller["own"]) == 401

    # Within the bound the cached caller still answers — the point of the cache. A long bound here, so a
    # slow request on a loaded machine cannot outlast it.
    settings.ROLLOUT_FLAG_RECHECK_SECONDS = 60
    key = ApiToken.issue(caller["user"])
    assert status(client, key, caller["own"]) == 200
    delete_tokens_by_sql()
    assert status(client, key, caller["own"]) == 200


def test_a_permission_granted_or_withdrawn_takes_effect(client, caller, django_capture_on_commit_callbacks):
    any_tenant = Permission.objects.get(codename="query_any_tenant")
    assert status(client, caller["key"], caller["other"]) == 403
    with django_capture_on_commit_callbacks(execute=True):
        caller["user"].user_permissions.add(any_tenant)
    assert status(client, caller["key"], caller["other"]) == 200
    # Withdrawn without a signal (as from another process): seen within the bound.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM auth_user_user_permissions WHERE user_id = %s", [caller["user"].pk])
    time.sleep(BOUND * 1.5)
    assert status(client, caller["key"], caller["other"]) == 403


def test_a_person_moved_to_another_client_is_seen_within_the_bound(client, caller):
    """The actor (the legacy person behind the user) is part of the cached caller: a change to it, made
    anywhere, takes effect within the bound."""
    assert status(client, caller["key"], caller["own"]) == 200
    assert status(client, caller["key"], caller["other"]) == 403
    m.People.objects.filter(loginid=caller["user"].username).update(client_id=caller["other"])
    time.sleep(BOUND * 1.5)
    assert status(client, caller["key"], caller["own"]) == 403
    assert status(client, caller["key"], caller["other"]) == 200


def test_a_deactivated_user_is_refused_at_once(client, caller, django_capture_on_commit_callbacks):
    assert status(client, caller["key"], caller["own"]) == 200
    with django_capture_on_commit_callbacks(execute=True):
        caller["user"].is_active = False
        caller["user"].save()
    assert status(client, caller["key"], caller["own"]) == 401


def test_a_warm_api_call_makes_no_query():
    """In a process of its own, on committed data: the caller, the owners and the answer all come from caches."""
    person = m.People.objects.filter(loginid__isnull=False, client_id__gt=0, bu_id__gt=0).order_by("id").first()
    key = committed(lambda: ApiToken.issue(User.objects.create_user(f"{person.loginid}")))
    code = f"""
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rollout.experiments import flag_name
from rollout.flags.cache import flags
from rollout.flags.state import FlagState
client = Client(HTTP_AUTHORIZATION="Token {key}")
calls = [("bu_list", {{"bu_id": {person.client_id}, "fmt": "array"}}),
         ("sites_list_web", {{"client_id": {person.client_id}, "people_id": {person.id}}}),
         ("asset_details", {{"mdtz": "2000-01-01T00:00:00+00:00", "site_id": {person.bu_id}}})]
for query, params in calls:
    with flags.pinned(FlagState(flag_name(query), everyone=True)):
        statuses = [client.get("/api/queries/" + query, params).status_code for _ in range(3)]
        with CaptureQueriesContext(connection) as captured:
            warm = client.get("/api/queries/" + query, params)
    print(query, statuses + [warm.status_code], warm["X-Rollout-Backend"], len(captured))
"""
    try:
        returncode, out, err = run_in_process(
            code, lambda: User.objects.filter(username=person.loginid).delete(), timeout=120
        )
    finally:
        committed(lambda: User.objects.filter(username=person.loginid).delete())
    assert returncode == 0, err
    assert out.split("\n")[:-1] == [
        f"{query} [200, 200, 200, 200] orm 0" for query in ("bu_list", "sites_list_web", "asset_details")
    ], out + err
