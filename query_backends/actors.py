"""Who a Django user is in the legacy world: the person whose loginid is the username.

RESOLVER is this project's ROLLOUT_ACTOR_RESOLVER: it declares the legacy cohorts a flag can name
(client, site, people group, person) and finds them for a user.
"""

from types import SimpleNamespace

from query_backends.models import BusinessUnit, GroupMembership, People, PeopleGroup
from query_backends.sentinels import SENTINEL_ID
from rollout.cache import cached
from rollout.routing.actors import Cohort

# Cached like a query: retired by any committed write to the tables it reads.
PERSON_LOOKUP = SimpleNamespace(name="person_of_user", reads=("people", "pgbelonging"), cache="always")


def _existing(queryset):
    """The ids of `queryset`'s rows among those asked; a sentinel row stands for "none", never for a cohort."""

    def existing(ids):
        return queryset.filter(pk__in=list(ids)).exclude(pk=SENTINEL_ID).values_list("pk", flat=True)

    return existing


def _business_units(kind):
    # Clients, customers, sites and zones are all rows of bt: only the kind's rows are ids of its cohort.
    return _existing(BusinessUnit.objects.filter(identifier__tacode=kind))


def resolve_user(user):
    """{person, client, site, people_group} ids for a Django user, or None when no person matches."""
    username = user.get_username()
    return cached(PERSON_LOOKUP, {"username": username}, lambda: _lookup(username))[0]


def _lookup(username):
    person = People.objects.filter(loginid=username).values("id", "client_id", "bu_id").first()
    if person is None:
        return None
    groups = GroupMembership.objects.filter(people_id=person["id"]).in_real_groups().values_list("pgroup_id", flat=True)
    return {
        "person": person["id"],
        "client": person["client_id"],
        "site": person["bu_id"],
        "people_group": set(groups),
    }


class LegacyResolver:
    # In the order a flag's cohorts are shown, narrowest first; the first is what a new flag's percentage
    # sticks to. A client and a site are both rows of bt.
    cohorts = (
        Cohort("person", "person", _existing(People.objects.all())),
        Cohort("people_group", "people group", _existing(PeopleGroup.objects.all())),
        Cohort("site", "site", _business_units("SITE")),
        Cohort("client", "client", _business_units("CLIENT")),
    )
    tenant = "client"  # the API's tenant wall: a token sees its client's rows

    def __call__(self, user):
        return resolve_user(user)


RESOLVER = LegacyResolver()
