"""An immutable snapshot of one flag, and the rule chain that decides for an actor.

The chain is PRECEDENCE, written once: the router decides by it, and the
status line, the admin form and docs/rollout.md are read from it. Each rule is
a small _is_active_for_x check answering True, False or None ("no opinion, ask
the next"), as in waffle; a check returns None at once when its fields are
empty, so a warm decision is a handful of attribute reads and set lookups.
"""

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rollout.routing.actors import USER_KEY, cohorts

# waffle's rules about the Django user behind the actor.
USER_FIELDS = ("users", "groups", "staff", "superusers", "authenticated")

# Rule names, as Decision.rule reports them.
RETIRED = "retired"  # the function is dropped (a retirement migration): the candidate, whatever else is set
EVERYONE_OFF = "everyone_off"
EXCLUSIONS = "exclusions"
EVERYONE = "everyone"
COHORTS = "cohorts"  # the cohort attributes the host's actor resolver declares (rollout.routing.actors)
USERS = "users"
PERCENT = "percent"
DEFAULT = "default"  # no rule had an opinion: the control serves


def bucket(flag_name, key):
    """A stable number in [0, 100) for (flag, actor key): the same in every process, forever."""
    digest = hashlib.blake2b(f"{flag_name}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


@dataclass(frozen=True)
class FlagState:
    name: str
    everyone: bool | None = None
    percent: float = 0.0
    percent_key: str = USER_KEY
    cohorts: Mapping = field(default_factory=dict)  # {cohort name: frozenset of ids}
    exclusions: Mapping = field(default_factory=dict)  # same shape: never the candidate for these
    users: frozenset = frozenset()  # Django user ids
    groups: frozenset = frozenset()  # Django auth group ids
    staff: bool = False
    superusers: bool = False
    authenticated: bool = False
    shadow_percent: float = 0.0
    fallback: bool = True
    retired: bool = False
    # The rules this state has data for (rules_in_force), found once: deciding asks only these.
    _chain: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_chain", tuple(self.rules_in_force()))

    @classmethod
    def from_flag(cls, flag):
        """The state of a QueryFlag row; prefetch users and groups to read many without a query each."""

        def members(field):
            # An unsaved flag has no memberships (and Django refuses to look them up).
            return frozenset(m.pk for m in getattr(flag, field).all()) if flag.pk else frozenset()

        return cls(
            name=flag.name,
            everyone=flag.everyone,
            percent=float(flag.percent or 0),
            percent_key=flag.percent_key,
            cohorts=_by_cohort(flag.cohorts),
            exclusions=_by_cohort(flag.exclusions),
            users=members("users"),
            groups=members("groups"),
            staff=flag.staff,
            superusers=flag.superusers,
            authenticated=flag.authenticated,
            shadow_percent=float(flag.shadow_percent or 0),
            fallback=flag.fallback,
            retired=flag.retired_at is not None,
        )

    @property
    def killed(self):
        """waffle's everyone=No: the kill switch."""
        return self.everyone is False

    def decide(self, actor):
        """(active, rule): whether the candidate serves this actor, and the name of the rule that said so."""
        for rule in self._chain:  # a rule not in force has no opinion: skipping it changes no answer
            verdict = rule.check(self, actor)
            if verdict is not None:
                return verdict, rule.name
        return False, DEFAULT

    def is_active_for(self, actor):
        return self.decide(actor)[0]

    def rules_in_force(self):
        """The rules this flag has data for, in precedence order, up to the first that answers for everyone."""
        in_force = []
        for rule in PRECEDENCE:
            if rule.in_force(self):
                in_force.append(rule)
                if rule.for_everyone:
                    break
        return in_force

    def _is_active_for_retired(self, actor):
        return True if self.retired else None

    def _is_active_for_everyone_off(self, actor):
        return False if self.killed else None

    def _is_active_for_exclusions(self, actor):
        if not self.exclusions or actor is None:
            return None
        return False if _in_any(self.exclusions, actor) else None

    def _is_active_for_everyone(self, actor):
        return True if self.everyone else None

    def _is_active_for_cohorts(self, actor):
        if not self.cohorts or actor is None:
            return None
        return True if _in_any(self.cohorts, actor) else None

    def _is_active_for_users(self, actor):
        if not (self.users or self.groups or self.staff or self.superusers or self.authenticated):
            return None
        if actor is None or not actor.is_authenticated:  # waffle's user rules are about a signed-in user
            return None
        if (
            self.authenticated
            or (self.staff and actor.is_staff)
            or (self.superusers and actor.is_superuser)
            or actor.user_id in self.users
            or not self.groups.isdisjoint(actor.user_group_ids)
        ):
            return True
        return None

    def _is_active_for_percent(self, actor):
        if not self.percent:
            return None
        key = actor.key(self.percent_key) if actor is not None else None
        if key is None:  # no one to stick to: a percentage of calls
            return (random.random() * 100 < self.percent) or None
        return (bucket(self.name, key) < self.percent) or None

    def shadow_sampled(self, cap=None):
        """Whether to compare this call: shadow_percent of calls, at most `cap` (a rate, the shadow budget's).
        A retired query has no control left to compare with."""
        percent = self.shadow_percent if cap is None else min(self.shadow_percent, cap * 100)
        return not self.retired and percent > 0 and random.random() * 100 < percent

    @property
    def falls_back(self):
        """Whether the control serves when the candidate raises: not once the control is gone."""
        return self.fallback and not self.retired


def _by_cohort(stored):
    """A flag's stored {name: [ids]} as {name: frozenset}, empty lists left out (an empty rule has no opinion)."""
    return MappingProxyType({name: frozenset(ids) for name, ids in (stored or {}).items() if ids})


def _in_any(ids_by_cohort, actor):
    facts = actor.cohorts
    for name, ids in ids_by_cohort.items():  # noqa: SIM110 — a loop, not any(…): asked on every routed call
        if name in facts and not ids.isdisjoint(facts[name]):
            return True
    return False


@dataclass(frozen=True)
class Rule:
    """One link of the chain: its name, its check, what it answers when it matches, and what it reads."""

    name: str
    check: Callable  # FlagState._is_active_for_x
    verdict: bool
    reads: tuple  # the FlagState fields that put it in force: with all of them empty it has no opinion
    form: tuple  # the flag fields an operator sets for it, in the order the admin shows them
    for_everyone: bool = False  # once in force it answers for every actor: no later rule is reached

    def in_force(self, state):
        return any(getattr(state, field) for field in self.reads)

    def describe(self, state):
        """Who this rule matches on this flag, in words: "everyone", "sites [3, 4], staff", "10% by site"."""
        if self.for_everyone:
            return "everyone"
        return ", ".join(_describe(state, field, value) for field in self.reads if (value := getattr(state, field)))


def _describe(state, field, value):
    if isinstance(value, Mapping):  # cohorts, labelled as the resolver declares them
        declared = cohorts()
        order = {name: i for i, name in enumerate(declared)}
        return ", ".join(
            f"{declared[name].label if name in declared else name} {sorted(value[name])}"
            for name in sorted(value, key=lambda name: (order.get(name, len(order)), name))
        )
    if isinstance(value, frozenset):
        return f"{field} {sorted(value)}"
    if isinstance(value, float):
        return f"{value:g}% by {state.percent_key}"
    return field


# First rule with an opinion wins. Retirement beats everything (there is no control left to serve); then the
# kill switch; an exclusion beats every inclusion.
PRECEDENCE = (
    Rule(RETIRED, FlagState._is_active_for_retired, True, ("retired",), (), for_everyone=True),
    Rule(EVERYONE_OFF, FlagState._is_active_for_everyone_off, False, ("killed",), ("everyone",), for_everyone=True),
    Rule(EXCLUSIONS, FlagState._is_active_for_exclusions, False, ("exclusions",), ("exclusions",)),
    Rule(EVERYONE, FlagState._is_active_for_everyone, True, ("everyone",), ("everyone",), for_everyone=True),
    Rule(COHORTS, FlagState._is_active_for_cohorts, True, ("cohorts",), ("cohorts",)),
    Rule(USERS, FlagState._is_active_for_users, True, USER_FIELDS, USER_FIELDS),
    Rule(PERCENT, FlagState._is_active_for_percent, True, ("percent",), ("percent", "percent_key")),
)
