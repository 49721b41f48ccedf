"""Who is asking: a Django user and the cohorts the host's actor resolver puts them in.

The host declares its cohort attributes through ROLLOUT_ACTOR_RESOLVER: an object with

- ``cohorts``: a tuple of Cohort (name, label, and optionally how to tell which ids exist);
- ``tenant`` (optional): the name of the cohort that owns data, for the API's tenant wall;
- ``__call__(user)``: {cohort name: id or ids} for a Django user, or None.

Flags store ids per declared cohort name; the admin, the CLI and the status read the labels from here.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType

from django.utils.module_loading import import_string

from rollout.conf import get_setting

USER_KEY = "user"  # a sticky percentage by Django user: always available


@dataclass(frozen=True)
class Cohort:
    name: str  # the key in a flag's cohorts and an actor's facts, e.g. "site"
    label: str  # as people read it, e.g. "site"
    # ids → the subset that exists; None when the host cannot tell (then any id is taken).
    existing: Callable[[Iterable[int]], Iterable[int]] | None = None


class _NoResolver:
    cohorts = ()
    tenant = None

    def __call__(self, user):
        return None


def resolver():
    path = get_setting("ACTOR_RESOLVER")
    return import_string(path) if path else _NoResolver()


def cohorts():
    """{name: Cohort} as the resolver declares them, in its order."""
    return {cohort.name: cohort for cohort in resolver().cohorts}


def percent_keys():
    return (USER_KEY, *cohorts())


def _ids(value):
    if value is None:
        return frozenset()
    if isinstance(value, (set, frozenset, list, tuple)):
        return frozenset(value)
    return frozenset((value,))


class Actor:
    """Immutable: the actor's cohort ids by attribute name, and the Django user's facts waffle's rules read.

    Actor(person=1, site=3, people_group={7, 8}) — any keyword that is not a user fact names a cohort.
    """

    __slots__ = ("cohorts", "is_authenticated", "is_staff", "is_superuser", "user_group_ids", "user_id")

    def __init__(
        self,
        *,
        user_id=None,
        user_group_ids=frozenset(),
        is_authenticated=False,
        is_staff=False,
        is_superuser=False,
        **cohort_ids,
    ):
        facts = {name: ids for name, value in cohort_ids.items() if (ids := _ids(value))}
        for name, value in (
            ("cohorts", MappingProxyType(facts)),
            ("user_id", user_id),
            ("user_group_ids", frozenset(user_group_ids)),
            ("is_authenticated", is_authenticated),
            ("is_staff", is_staff),
            ("is_superuser", is_superuser),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("an Actor is immutable")

    def _facts(self):
        return (dict(self.cohorts), self.user_id, self.user_group_ids, self.is_authenticated, self.is_staff)

    def __eq__(self, other):
        return isinstance(other, Actor) and self._facts() == other._facts() and self.is_superuser == other.is_superuser

    def __hash__(self):
        return hash((frozenset(self.cohorts.items()), self.user_id))

    def __repr__(self):
        return f"Actor({dict(self.cohorts)!r}, user_id={self.user_id!r})"

    def ids(self, cohort):
        return self.cohorts.get(cohort, frozenset())

    def one(self, cohort):
        """The actor's single id in this cohort, or None (none, or several)."""
        ids = self.ids(cohort)
        return next(iter(ids)) if len(ids) == 1 else None

    def key(self, kind):
        """The stable identity a sticky percentage hashes: the cohort id, else the user, else None."""
        if kind != USER_KEY and (one := self.one(kind)) is not None:
            return f"{kind}:{one}"
        return f"user:{self.user_id}" if self.user_id is not None else None

    def record(self):
        """Ids only: what a discrepancy record may keep of who asked."""
        return {**{name: sorted(ids) for name, ids in self.cohorts.items()}, "user_id": self.user_id}


def tenant_label():
    """How people call the tenant cohort, as the resolver declares it (e.g. "client"); "tenant" without one."""
    tenant = getattr(resolver(), "tenant", None)
    return cohorts()[tenant].label if tenant in cohorts() else "tenant"


def tenant_of(actor):
    """The id of the actor's tenant (the resolver's `tenant` cohort), or None."""
    tenant = getattr(resolver(), "tenant", None)
    return actor.one(tenant) if tenant and actor is not None else None


def actor_for_user(user):
    """The actor behind a Django user, with the cohorts the resolver finds for it."""
    if user is None or not user.is_authenticated:
        return Actor()
    facts = resolver()(user) or {}
    return Actor(
        user_id=user.pk,
        user_group_ids=frozenset(user.groups.values_list("pk", flat=True)),
        is_authenticated=True,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
        **facts,
    )
