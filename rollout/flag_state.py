"""An immutable snapshot of one flag, and the rule chain that decides for an actor.

Each _is_active_for_x check answers True, False or None ("no opinion, ask the
next"), as in waffle; the chain keeps only the checks a flag has data for, so a
warm decision is a handful of set lookups.
"""

import hashlib
import random
from dataclasses import dataclass

TRACKED_FIELDS = (
    "everyone",
    "percent",
    "percent_key",
    "people",
    "people_groups",
    "sites",
    "clients",
    "excluded_people",
    "excluded_people_groups",
    "excluded_sites",
    "excluded_clients",
    "staff",
    "superusers",
    "authenticated",
    "testing",
    "shadow_percent",
    "fallback",
    "rescue",
    "rescue_after",
    "note",
    "guard_window",
    "guard_min_sample",
    "guard_max_discrepancy_rate",
    "guard_max_error_rate",
    "guard_max_latency_ratio",
    "guard_tripped_at",
    "guard_reason",
)


def bucket(flag_name, key):
    """A stable number in [0, 100) for (flag, actor key): the same in every process, forever."""
    digest = hashlib.blake2b(f"{flag_name}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


@dataclass(frozen=True)
class FlagState:
    name: str
    everyone: bool | None = None
    percent: float = 0.0
    percent_key: str = "person"
    people: frozenset = frozenset()
    people_groups: frozenset = frozenset()
    sites: frozenset = frozenset()
    clients: frozenset = frozenset()
    excluded_people: frozenset = frozenset()
    excluded_people_groups: frozenset = frozenset()
    excluded_sites: frozenset = frozenset()
    excluded_clients: frozenset = frozenset()
    user_ids: frozenset = frozenset()
    user_group_ids: frozenset = frozenset()
    staff: bool = False
    superusers: bool = False
    authenticated: bool = False
    shadow_percent: float = 0.0
    fallback: bool = True

    @classmethod
    def from_flag(cls, flag, user_ids=None, user_group_ids=None):
        def ids(field):
            return frozenset(getattr(flag, field) or ())

        return cls(
            name=flag.name,
            everyone=flag.everyone,
            percent=float(flag.percent or 0),
            percent_key=flag.percent_key,
            people=ids("people"),
            people_groups=ids("people_groups"),
            sites=ids("sites"),
            clients=ids("clients"),
            excluded_people=ids("excluded_people"),
            excluded_people_groups=ids("excluded_people_groups"),
            excluded_sites=ids("excluded_sites"),
            excluded_clients=ids("excluded_clients"),
            user_ids=frozenset(user_ids if user_ids is not None else flag.users.values_list("pk", flat=True)),
            user_group_ids=frozenset(
                user_group_ids if user_group_ids is not None else flag.groups.values_list("pk", flat=True)
            ),
            staff=flag.staff,
            superusers=flag.superusers,
            authenticated=flag.authenticated,
            shadow_percent=float(flag.shadow_percent or 0),
            fallback=flag.fallback,
        )

    def __post_init__(self):
        checks = [self._is_active_for_everyone_off]
        if self.excluded_people or self.excluded_people_groups or self.excluded_sites or self.excluded_clients:
            checks.append(self._is_active_for_exclusions)
        checks.append(self._is_active_for_everyone)
        for field, check in (
            ("people", self._is_active_for_people),
            ("people_groups", self._is_active_for_groups),
            ("sites", self._is_active_for_sites),
            ("clients", self._is_active_for_clients),
        ):
            if getattr(self, field):
                checks.append(check)
        if self.user_ids or self.user_group_ids or self.staff or self.superusers or self.authenticated:
            checks.append(self._is_active_for_user)
        if self.percent > 0:
            checks.append(self._is_active_for_percent)
        object.__setattr__(self, "_chain", tuple(checks))

    def decide(self, actor):
        """(active, rule): whether the candidate serves this actor, and the rule that said so."""
        for check in self._chain:
            verdict = check(actor)
            if verdict is not None:
                return verdict, check.__name__.removeprefix("_is_active_for_")
        return False, "default"

    def is_active_for(self, actor):
        return self.decide(actor)[0]

    def _is_active_for_everyone_off(self, actor):
        return False if self.everyone is False else None

    def _is_active_for_exclusions(self, actor):
        if actor is None:
            return None
        if (
            actor.person_id in self.excluded_people
            or actor.site_id in self.excluded_sites
            or actor.client_id in self.excluded_clients
            or not self.excluded_people_groups.isdisjoint(actor.group_ids)
        ):
            return False
        return None

    def _is_active_for_everyone(self, actor):
        return True if self.everyone else None

    def _is_active_for_people(self, actor):
        return True if actor is not None and actor.person_id in self.people else None

    def _is_active_for_groups(self, actor):
        return True if actor is not None and not self.people_groups.isdisjoint(actor.group_ids) else None

    def _is_active_for_sites(self, actor):
        return True if actor is not None and actor.site_id in self.sites else None

    def _is_active_for_clients(self, actor):
        return True if actor is not None and actor.client_id in self.clients else None

    def _is_active_for_user(self, actor):
        if actor is None or not actor.is_authenticated:
            return None
        if (
            self.authenticated
            or (self.staff and actor.is_staff)
            or (self.superusers and actor.is_superuser)
            or actor.user_id in self.user_ids
            or not self.user_group_ids.isdisjoint(actor.user_group_ids)
        ):
            return True
        return None

    def _is_active_for_percent(self, actor):
        key = actor.key(self.percent_key) if actor is not None else None
        if key is None:  # no one to stick to: a percentage of calls
            return (random.random() * 100 < self.percent) or None
        return (bucket(self.name, key) < self.percent) or None

    def shadow_sampled(self):
        return self.shadow_percent > 0 and random.random() * 100 < self.shadow_percent
