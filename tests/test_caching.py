from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

import rollout
from query_backends import models as m
from query_backends.registry import REGISTRY
from rollout import operations
from rollout.actors import Actor
from rollout.background import background
from rollout.flag_cache import flags
from rollout.metrics import metrics
from rollout.models import Discrepancy
from tests.legacy_world import bu, capability, person

pytestmark = pytest.mark.django_db
ALICE = Actor(person_id=1)


def caps(root):
    definition = REGISTRY.get("web_capabilities")
    return definition.run_cached("orm", definition.clean({"root_id": root.id}))


def renamed(capability_row):
    capability_row.capscode = "RENAMED"
    return capability_row


WRITES = {
    "save": lambda root: m.Capability.objects.create(capscode="NEW", parent=root, cfor="WEB"),
    "delete": lambda root: m.Capability.objects.filter(parent=root).first().delete(),
    "bulk_create": lambda root: m.Capability.objects.bulk_create([m.Capability(capscode="B", parent=root, cfor="WEB")]),
    "bulk_update": lambda root: m.Capability.objects.bulk_update(
        [renamed(c) for c in m.Capability.objects.filter(parent=root)], ["capscode"]
    ),
    "queryset update": lambda root: m.Capability.objects.filter(parent=root).update(capscode="UPDATED"),
    "queryset delete": lambda root: m.Capability.objects.filter(parent=root).delete(),
}


@pytest.mark.parametrize("write", WRITES)
def test_every_committed_write_through_django_invalidates_the_answer(write, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        root = capability(cfor="WEB")
        capability(root)
    first, hit = caps(root)
    assert not hit and len(first) == 2
    assert caps(root) == (first, True)
    with django_capture_on_commit_callbacks(execute=True):
        WRITES[write](root)
    fresh, hit = caps(root)
    assert not hit and fresh != first
    assert fresh == REGISTRY.get("web_capabilities").run("pg", {"root_id": root.id})


def test_a_rolled_back_write_invalidates_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        root = capability(cfor="WEB")
    caps(root)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        capability(root)
    assert callbacks  # the bump waits for a commit that never comes
    assert caps(root)[1] is True


def test_a_daily_answer_rolls_over_at_utc_midnight():
    definition = REGISTRY.get("sites_list_web")
    params = definition.clean({"client_id": 1, "people_id": 1})
    with time_machine.travel(datetime(2030, 1, 1, 23, 59, 59, tzinfo=UTC), tick=False):
        assert definition.run_cached("orm", params)[1] is False
        assert definition.run_cached("orm", params)[1] is True
    with time_machine.travel(datetime(2030, 1, 2, 0, 0, 1, tzinfo=UTC), tick=False):
        assert definition.run_cached("orm", params)[1] is False


def test_queries_that_read_now_are_never_cached():
    definition = REGISTRY.get("job_needs")
    params = definition.clean({"people_id": 1, "bu_id": 1, "client_id": 1})
    assert definition.run_cached("orm", params)[1] is False
    assert definition.run_cached("orm", params)[1] is False


def test_an_unreachable_redis_makes_the_cache_a_no_op(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.05, "SOCKET_TIMEOUT": 0.05, "IGNORE_EXCEPTIONS": True},
        }
    }
    definition = REGISTRY.get("bu_list")
    params = definition.clean({"bu_id": 1, "fmt": "array"})
    expected = definition.run("pg", params)
    assert definition.run_cached("orm", params) == (expected, False)
    assert definition.run_cached("orm", params) == (expected, False)


def test_the_router_serves_the_candidate_through_the_cache_and_counts_hits():
    operations.enable(["bu_list"])
    flags.invalidate()
    answers = [rollout.dispatch("bu_list", actor=ALICE, bu_id=1, fmt="array") for _ in range(3)]
    assert answers[0] == answers[1] == answers[2] and rollout.last_decision().cache_hit is True
    numbers = metrics.snapshot()[("bu_list", "orm")]
    assert (numbers["cache_misses"], numbers["cache_hits"]) == (1, 2)


@pytest.mark.usefixtures("no_discrepancies")
def test_a_write_that_bypasses_django_is_caught_as_a_stale_cache_discrepancy():
    from tests.rollout_helpers import committed

    def rename(name):
        with connection.cursor() as cursor:  # raw SQL: no signal, no generation bump
            cursor.execute("UPDATE bt SET buname = %s WHERE id = 2", [name])

    original = m.BusinessUnit.objects.get(id=2).buname
    operations.enable(["bu_list"])
    operations.set_shadow("bu_list", 100)
    flags.invalidate()
    try:
        rollout.dispatch("bu_list", actor=ALICE, bu_id=2, fmt="jsonb")  # miss: now cached
        committed(rename, original + " (elsewhere)")
        rollout.dispatch("bu_list", actor=ALICE, bu_id=2, fmt="jsonb")  # hit: stale
        background.drain()
    finally:
        committed(rename, original)
    assert list(Discrepancy.objects.values_list("kind", flat=True)) == ["stale_cache"]


def test_job_needs_for_many_people_costs_two_queries(django_assert_num_queries):
    client = bu(kind="CLIENT")
    site = bu(parent=client)
    people = [person(client, site) for _ in range(25)]
    with django_assert_num_queries(2):
        answers = REGISTRY.get("job_needs").run_many(
            "orm", "people_id", [p.id for p in people], {"bu_id": site.id, "client_id": client.id}
        )
    assert set(answers) == {p.id for p in people}


def test_dispatch_many_answers_like_one_call_per_person():
    from query_backends.models import JobNeed

    row = JobNeed.objects.filter(
        people_id__gt=0,
        bu_id__isnull=False,
        identifier="TASK",
        plandatetime__gte=datetime.now(UTC) - timedelta(hours=12),
    ).first()
    people = sorted(
        {row.people_id, *m.People.objects.filter(client_id=row.client_id).values_list("id", flat=True)[:30]}
    )
    operations.enable(["job_needs"])
    flags.invalidate()
    many = rollout.dispatch_many(
        "job_needs", actor=ALICE, vary="people_id", values=people, bu_id=row.bu_id, client_id=row.client_id
    )
    assert rollout.last_decision().backend == "orm"
    definition = REGISTRY.get("job_needs")
    for person_id in people:
        single = definition.run("pg", {"people_id": person_id, "bu_id": row.bu_id, "client_id": row.client_id})
        assert definition.compare(single, many[person_id]).equal, person_id
    assert any(many.values())


def test_the_person_lookup_is_cached_and_retired_by_a_membership_change(
    django_assert_num_queries, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import User

    from query_backends.actors import resolve_user

    with django_capture_on_commit_callbacks(execute=True):
        client = bu(kind="CLIENT")
        someone = person(client, None, loginid="lookup-me")
    user = User(username="lookup-me")
    first = resolve_user(user)
    assert first["person_id"] == someone.id and first["group_ids"] == set()
    with django_assert_num_queries(0):
        assert resolve_user(user) == first
    with django_capture_on_commit_callbacks(execute=True):
        group = m.PeopleGroup.objects.create(groupname="G", client=client)
        m.GroupMembership.objects.create(pgroup=group, people=someone)
    assert resolve_user(user)["group_ids"] == {group.id}
