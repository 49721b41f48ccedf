"""Who is asking: a Django user and/or a legacy person, with the cohort facts the flags look at."""

from dataclasses import dataclass, field

from django.utils.module_loading import import_string

from rollout.conf import get_setting

PERCENT_KEYS = ("person", "site", "client")


@dataclass(frozen=True)
class Actor:
    person_id: int | None = None
    client_id: int | None = None
    site_id: int | None = None
    group_ids: frozenset = field(default_factory=frozenset)  # legacy people groups
    user_id: int | None = None
    user_group_ids: frozenset = field(default_factory=frozenset)  # Django auth groups
    is_authenticated: bool = False
    is_staff: bool = False
    is_superuser: bool = False

    def key(self, kind):
        """The stable identity a sticky percentage hashes: None when the actor has no such fact."""
        if kind == "person":
            if self.person_id is not None:
                return f"person:{self.person_id}"
            return f"user:{self.user_id}" if self.user_id is not None else None
        if kind == "site":
            return f"site:{self.site_id}" if self.site_id is not None else None
        if kind == "client":
            return f"client:{self.client_id}" if self.client_id is not None else None
        raise ValueError(f"percent key {kind!r} is not one of {', '.join(PERCENT_KEYS)}")

    def ids(self):
        """Ids only: what a discrepancy record may keep of who asked."""
        return {
            "person_id": self.person_id,
            "client_id": self.client_id,
            "site_id": self.site_id,
            "user_id": self.user_id,
        }


def actor_for_user(user):
    """The actor behind a Django user, with the legacy person the resolver finds for it."""
    if user is None or not user.is_authenticated:
        return Actor()
    resolver = get_setting("ACTOR_RESOLVER")
    person = (import_string(resolver)(user) if resolver else None) or {}
    return Actor(
        person_id=person.get("person_id"),
        client_id=person.get("client_id"),
        site_id=person.get("site_id"),
        group_ids=frozenset(person.get("group_ids", ())),
        user_id=user.pk,
        user_group_ids=frozenset(user.groups.values_list("pk", flat=True)),
        is_authenticated=True,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
    )
