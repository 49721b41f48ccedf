"""Who a Django user is in the legacy world: the person whose loginid is the username."""

from types import SimpleNamespace

from query_backends import caching
from query_backends.models import GroupMembership, People

# Cached like a query: retired by any committed write to the tables it reads.
PERSON_LOOKUP = SimpleNamespace(name="person_of_user", reads=("people", "pgbelonging"), cache="always")


def resolve_user(user):
    """{person_id, client_id, site_id, group_ids} for a Django user, or None when no person matches."""
    username = user.get_username()
    return caching.cached(PERSON_LOOKUP, {"username": username}, lambda: _lookup(username))[0]


def _lookup(username):
    person = People.objects.filter(loginid=username).values("id", "client_id", "bu_id").first()
    if person is None:
        return None
    groups = GroupMembership.objects.filter(people_id=person["id"]).in_real_groups().values_list("pgroup_id", flat=True)
    return {
        "person_id": person["id"],
        "client_id": person["client_id"],
        "site_id": person["bu_id"],
        "group_ids": set(groups),
    }
