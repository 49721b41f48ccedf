"""Who a Django user is in the legacy world: the person whose loginid is the username."""

from query_backends.models import GroupMembership, People
from query_backends.sentinels import SENTINEL_ID


def resolve_user(user):
    """{person_id, client_id, site_id, group_ids} for a Django user, or None when no person matches."""
    person = People.objects.filter(loginid=user.get_username()).values("id", "client_id", "bu_id").first()
    if person is None:
        return None
    groups = (
        GroupMembership.objects.filter(people_id=person["id"], pgroup_id__isnull=False)
        .exclude(pgroup_id=SENTINEL_ID)
        .values_list("pgroup_id", flat=True)
    )
    return {"person_id": person["id"], "client_id": person["client_id"], "site_id": person["bu_id"],
            "group_ids": set(groups)}  # fmt: skip
