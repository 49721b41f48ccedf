"""The host's waffle flags keep waffle's stock model and behaviour; query flags live beside them."""

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.management import call_command
from django.db import transaction
from django.test import RequestFactory
from waffle import flag_is_active, get_waffle_flag_model
from waffle.models import Flag

from rollout.flags import writes
from rollout.models import QueryFlag
from rollout.routing.actors import Actor
from rollout.routing.router import decide

pytestmark = pytest.mark.django_db


def test_waffle_keeps_its_own_flag_model():
    assert get_waffle_flag_model() is Flag
    assert not issubclass(QueryFlag, Flag.__mro__[1])  # not a waffle flag at all


def test_ten_warm_flag_checks_cost_no_query(django_assert_num_queries):
    Flag.objects.create(name="host_feature", everyone=True)
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    writes.set_percent("bu_list", 50)
    actor = Actor(person=1, user_id=4)
    assert flag_is_active(request, "host_feature")  # warm waffle's cache
    first = decide("bu_list", actor)  # and the flag cache
    with django_assert_num_queries(0):
        for _ in range(10):
            assert flag_is_active(request, "host_feature")
            assert decide("bu_list", actor) == first


def test_a_host_flag_is_answered_by_waffle_not_by_query_flag_rules():
    # A percentage is sticky through waffle's dwf_ cookie: one request asking many times gets one answer.
    Flag.objects.create(name="half", percent=50)
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    answers = {flag_is_active(request, "half") for _ in range(40)}
    assert len(answers) == 1 and "half" in request.waffles


def test_flush_works_on_a_migrated_database():
    """No table outside Django's knowledge references auth_user (waffle's tables belong to waffle's model)."""
    user = User.objects.create_user("flushed")
    with transaction.atomic():
        call_command("flush", interactive=False, verbosity=0)
        assert not User.objects.filter(pk=user.pk).exists()
        transaction.set_rollback(True)  # the test database's world stays
    assert User.objects.filter(pk=user.pk).exists()
