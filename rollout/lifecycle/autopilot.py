"""The autopilot, and the operator's moves along a plan: start, pause, resume, skip, back.

Every move is one flags.writes write: the row lock, only the fields the move sets, a new version and the
history (with why) in one transaction. The autopilot decides from an unlocked read, then writes only if the
locked row is still where it saw it — not paused, not killed, not tripped, at the same stage — so an operator's
pause or a guard trip at the same moment wins, and two ticks at once advance a query once.

It advances a query whose current stage's gates are all met; it pauses (never advances) one whose guard
tripped, that was killed, or whose evidence went backwards (a rate over its limit on enough comparisons).
Otherwise it waits. It never starts a plan and never touches a query without one.
"""

from dataclasses import dataclass

from django.utils import timezone

from rollout.experiments import flag_name, query_name, registry
from rollout.flags.writes import write
from rollout.lifecycle import evidence, plan, readiness
from rollout.lifecycle.plan import PlanError
from rollout.models import QueryFlag
from rollout.operations import OperationError, flags_for

ADVANCED, WAITING, PAUSED, FINISHED, RACED = "advanced", "waiting", "paused", "finished", "raced"


@dataclass(frozen=True)
class Move:
    query: str
    outcome: str  # advanced, waiting, paused, finished (at the last stage), raced (someone moved it first)
    stage: str | None
    to: str | None = None
    reason: str = ""

    def as_dict(self):
        return {"query": self.query, "outcome": self.outcome, "stage": self.stage, "to": self.to, "reason": self.reason}

    def __str__(self):
        where = f"{self.stage} → {self.to}" if self.to else self.stage
        return f"{self.query}: {self.outcome} at {where}" + (f" ({self.reason})" if self.reason else "")


def _why_stopped(flag):
    """Why the autopilot must pause this flag now, or None."""
    if flag.guard_tripped_at is not None:
        return f"guard tripped: {flag.guard_reason}"
    if flag.everyone is False:
        return f"killed by {flag.killed_by or 'an operator'}"
    return None


def _plan_of(flag):
    the_plan = plan.of(flag)
    if the_plan is None:
        raise PlanError(f"{query_name(flag.name)}: has no plan; apply one with `rollout plan --apply FILE`")
    return the_plan


class _Change:
    """A flags.writes change that remembers whether it acted (the locked row may have moved on meanwhile)."""

    def __init__(self, apply):
        self.apply, self.acted = apply, False

    def __call__(self, flag):
        fields = self.apply(flag)
        self.acted = bool(fields)
        return fields


def _replaced(flag, stage):
    """What putting the flag at this stage would overwrite that someone set on it: its cohorts, percent, everyone
    or shadow where the stage says otherwise, in words (an empty value is nobody's setting)."""
    values = stage.flag_values(flag)
    replaced = []
    for field, label in (
        ("cohorts", "cohorts"),
        ("percent", "percent"),
        ("everyone", "everyone"),
        ("shadow_percent", "shadow"),
    ):
        current = getattr(flag, field)
        if current and current != values[field]:
            if field == "cohorts":
                shown = ", ".join(f"{name} {sorted(ids)}" for name, ids in sorted(current.items()))
            else:
                shown = "on" if current is True else f"{float(current):g} %"
            replaced.append(f"{label} {shown}")
    return replaced


def _to_stage(the_plan, index, expect_stage, *, autopilot=None, unpause=False, replacing=None):
    """A change putting the flag at stage `index` of the plan, if the locked row is still at expect_stage (and,
    given `replacing`, would still overwrite exactly that).

    autopilot: the version of the flag the autopilot judged. Its change does nothing when the row was written
    since — paused, killed, tripped, or an operator's percent or shadow that its evidence did not see."""

    @_Change
    def change(flag):
        moved = flag.plan_stage != expect_stage or (
            replacing is not None and _replaced(flag, the_plan.stages[index]) != replacing
        )
        if moved or (autopilot is not None and flag.version != autopilot):
            if autopilot is not None:
                return []
            raise OperationError(f"{query_name(flag.name)}: its plan or flag moved while this was asked; look again")
        stage = the_plan.stages[index]
        values = stage.flag_values(flag)
        for field, value in values.items():
            setattr(flag, field, value)
        flag.plan_stage = index
        fields = ["plan_stage", *values]
        if unpause:
            flag.plan_paused, flag.plan_paused_reason = False, ""
            fields += ["plan_paused", "plan_paused_reason"]
        return fields

    return change


def _pause(reason, expect_stage=...):
    @_Change
    def change(flag):
        if flag.plan_paused or (expect_stage is not ... and flag.plan_stage != expect_stage):
            return []
        flag.plan_paused, flag.plan_paused_reason = True, reason
        return ["plan_paused", "plan_paused_reason"]

    return change


def step(flag, now=None, source="autopilot"):
    """One autopilot decision for one flag (read without a lock); returns the Move."""
    query = query_name(flag.name)
    the_plan = plan.of(flag)
    at = flag.plan_stage
    stage = the_plan.stages[at]
    if stopped := _why_stopped(flag):
        return _paused(flag, stage, at, stopped, source)
    if at + 1 >= len(the_plan):
        return Move(query, FINISHED, stage.name)
    checks = evidence.gather(flag, now).check(stage.gates)
    if regressed := [c for c in checks if c.regressed]:
        why = "evidence regressed: " + "; ".join(f"{c.gate} {c.seen} (wanted {c.wanted})" for c in regressed)
        return _paused(flag, stage, at, why, source)
    if unmet := [c for c in checks if not c.met]:
        return Move(
            query, WAITING, stage.name, reason="; ".join(f"{c.gate}: {c.seen} (wanted {c.wanted})" for c in unmet)
        )
    following = the_plan.stages[at + 1]
    why = "gates met: " + ("; ".join(f"{c.gate} {c.seen}" for c in checks) or "none set")
    change = _to_stage(the_plan, at + 1, at, autopilot=flag.version)
    write([flag.name], change, source=source, reason=f"autopilot: {stage.name} → {following.name}; {why}")
    if not change.acted:
        return Move(query, RACED, stage.name, reason="moved or paused by someone else first")
    return Move(query, ADVANCED, stage.name, following.name, why)


def _paused(flag, stage, at, why, source):
    change = _pause(why, at)
    write([flag.name], change, source=source, reason=f"autopilot paused at {stage.name}: {why}")
    return Move(query_name(flag.name), PAUSED if change.acted else RACED, stage.name, reason=why)


def tick(now=None):
    """Run the autopilot once over every registered query with a started, unpaused plan; returns the Moves."""
    now = now or timezone.now()
    names = [flag_name(q) for q in registry().names()]
    candidates = QueryFlag.objects.filter(
        name__in=names, plan_stage__isnull=False, plan_paused=False, retired_at__isnull=True
    ).order_by("name")
    moves = []
    for flag in candidates:
        try:
            moves.append(step(flag, now))
        except OperationError as exc:  # a busy row, a bad stored plan: this query waits, the others go on
            moves.append(Move(query_name(flag.name), WAITING, None, reason=str(exc)))
    readiness.record_counts()
    return moves


# --- the operator's moves --------------------------------------------------------------------------------------


def _one(query):
    [flag] = flags_for([query])
    return flag, _plan_of(flag)


def start(query, user=None, source="cli", force=False):
    """Put a query at its plan's first stage (its flag set as the stage says) and let the autopilot drive.

    Refused when that would overwrite cohorts, a percent, everyone or a shadow someone set on the flag, unless
    `force`; then the history's reason names what was replaced."""
    flag, the_plan = _one(query)
    if flag.plan_stage is not None:
        raise OperationError(f"{query}: its plan is already at stage {the_plan.stages[flag.plan_stage].name!r}")
    first = the_plan.stages[0]
    replaced = _replaced(flag, first)
    if replaced and not force:
        raise OperationError(
            f"{query}: starting its plan at {first.name!r} would replace {'; '.join(replaced)} set on its flag; "
            "pass --force to replace them"
        )
    return write(
        [flag.name],
        _to_stage(the_plan, 0, None, unpause=True, replacing=replaced),
        user=user,
        source=source,
        reason=f"plan started: {first.name}" + (f"; replaced {'; '.join(replaced)}" if replaced else ""),
    )[0]


def pause(query, reason="", user=None, source="cli"):
    flag, _ = _one(query)
    why = reason or f"paused by {user.get_username() if user else source}"
    return write([flag.name], _pause(why), user=user, source=source, reason=f"plan paused: {why}")[0]


def resume(query, user=None, source="cli"):
    flag, _ = _one(query)
    if flag.plan_stage is None:
        raise OperationError(f"{query}: its plan has not started; `rollout plan {query} --start` starts it")
    if flag.guard_tripped_at is not None:
        raise OperationError(
            f"{query}: the guard tripped ({flag.guard_reason}); run `rollout clear-guard {query}` first"
        )

    def change(flag):
        flag.plan_paused, flag.plan_paused_reason = False, ""
        return ["plan_paused", "plan_paused_reason"]

    return write([flag.name], change, user=user, source=source, reason="plan resumed")[0]


def stop(query, user=None, source="cli"):
    """Take the query off its plan: the autopilot leaves it alone, its flag stays as it is, the plan stays stored
    (`--start` starts it again from its first stage)."""
    [flag] = flags_for([query])

    def change(flag):
        flag.plan_stage, flag.plan_paused, flag.plan_paused_reason = None, False, ""
        return ["plan_stage", "plan_paused", "plan_paused_reason"]

    return write([flag.name], change, user=user, source=source, reason="plan stopped")[0]


def skip(query, user=None, source="cli"):
    """On to the next stage now, whatever the evidence says (recorded as the operator's decision)."""
    return _move(query, +1, "skipped to", user, source)


def back(query, user=None, source="cli"):
    """Back to the previous stage: its flag settings again, time in stage from zero."""
    return _move(query, -1, "stepped back to", user, source)


def _move(query, by, verb, user, source):
    flag, the_plan = _one(query)
    if flag.plan_stage is None:
        raise OperationError(f"{query}: its plan has not started; `rollout plan {query} --start` starts it")
    index = flag.plan_stage + by
    if not 0 <= index < len(the_plan):
        raise OperationError(
            f"{query}: stage {the_plan.stages[flag.plan_stage].name!r} is the "
            f"{'last' if by > 0 else 'first'} of its plan"
        )
    change = _to_stage(the_plan, index, flag.plan_stage)
    return write([flag.name], change, user=user, source=source, reason=f"plan {verb} {the_plan.stages[index].name}")[0]


def set_plan(query, raw, user=None, source="cli"):
    """Store a plan (its JSON value) on the query's flag. A started plan keeps its place by stage name."""
    the_plan = plan.parse(raw)
    if raw.get("query") not in (None, query):
        raise PlanError(f"query: the file is the plan of {raw['query']!r}, not of {query!r}")
    [flag] = flags_for([query])
    return _apply(flag, the_plan, user, source)


def _apply(flag, the_plan, user, source):
    return write(
        [flag.name], lambda locked: plan.put(locked, the_plan), user=user, source=source, reason="plan applied"
    )[0]
