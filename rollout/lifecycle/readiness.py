"""Whether a query's function can be dropped — every reason, from the rollout's own records and the database itself.

Ready only when every check says so:
- the candidate has served everyone for RETIRE_AFTER_HOURS, with at least RETIRE_MIN_COMPARISONS shadow
  comparisons in that stage, and no open discrepancy;
- nothing in the database depends on the function (pg_depend) or names it in its body (pg_proc.prosrc);
- nothing outside this application called it over the last RETIRE_CALL_WINDOW_HOURS: PostgreSQL's call count
  (pg_stat_user_functions) minus the application's own runs of it (counted by rollout wherever it runs a
  control). Each check records a count; the window runs from the newest count at least that old.
"Cannot tell" is not ready: with track_functions off, nobody knows who else calls the function.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from rollout.conf import get_setting
from rollout.experiments import get_experiment, query_name, registry
from rollout.lifecycle import evidence, stages
from rollout.metrics.rollups import FUNCTION_CALLS, current_minute, metrics
from rollout.models import Discrepancy, FunctionCallCount, QueryFlag
from rollout.operations import OperationError, flags_for
from rollout.postgres import dependencies
from rollout.reports import OPEN

RECORD_EVERY = timedelta(hours=1)
KEPT = timedelta(days=1)
ENABLE_TRACKING = (
    "enable it with `ALTER SYSTEM SET track_functions = 'pl'; SELECT pg_reload_conf();` as a superuser "
    "(or track_functions = pl in postgresql.conf), then check again after the window"
)


@dataclass(frozen=True)
class Reason:
    check: str
    ready: bool | None  # None: cannot tell (not ready)
    text: str

    def as_dict(self):
        return {"check": self.check, "ready": self.ready, "text": self.text}


@dataclass(frozen=True)
class Readiness:
    query: str
    function: str | None
    reasons: tuple

    @property
    def ready(self):
        return all(reason.ready is True for reason in self.reasons)

    def as_dict(self):
        return {
            "query": self.query,
            "function": self.function,
            "ready": self.ready,
            "reasons": [r.as_dict() for r in self.reasons],
        }

    def text(self):
        head = f"{self.query} ({self.function or 'no function'}): {'READY' if self.ready else 'NOT READY'} to retire"
        marks = {True: "ok  ", False: "NO  ", None: "??  "}
        return "\n".join([head, *(f"  {marks[r.ready]}{r.check}: {r.text}" for r in self.reasons)])


def control_function(query):
    """The signature (regprocedure text) of the query's control, as its experiment declares it."""
    signature = getattr(get_experiment(query), "control_function", None)
    if not signature:
        raise OperationError(f"{query}: its experiment does not name its function (control_function)")
    return signature


def check(query):
    [flag] = flags_for([query])
    signature = control_function(query)
    if flag.retired_at:
        return Readiness(
            query, signature, (Reason("retired", False, f"already retired {flag.retired_at:%Y-%m-%d %H:%M}"),)
        )
    function = dependencies.find(signature)
    if function is None:
        return Readiness(query, signature, (Reason("installed", False, f"{signature} is not installed"),))
    reasons = [*_served(flag), _dependents(function), _bodies(function), _external_calls(query, function)]
    statements = _statements(function)
    return Readiness(query, function.signature, tuple(reasons + [statements]))


def _served(flag):
    now = timezone.now()
    hours = get_setting("RETIRE_AFTER_HOURS")
    life = stages.summary(flag, now)
    served = life["stage"] == stages.EVERYONE and life["time_in_stage"] >= hours * 3600
    yield Reason(
        "served_everyone",
        served,
        f"stage {life['stage']} for {life['time_in_stage_text']} (needs everyone for {hours:g} h)",
    )
    found = evidence.gather(flag, now)
    least = get_setting("RETIRE_MIN_COMPARISONS")
    yield Reason(
        "comparisons",
        life["stage"] == stages.EVERYONE and found.comparisons >= least,
        f"{found.comparisons} shadow comparisons in this stage (needs {least})",
    )
    open_ones = Discrepancy.objects.filter(OPEN, query=query_name(flag.name)).count()
    yield Reason("discrepancies", open_ones == 0, f"{open_ones} open discrepancies")


def _dependents(function):
    found = dependencies.dependents(function)
    if found:
        return Reason("dependents", False, "the database depends on it: " + "; ".join(found))
    return Reason("dependents", True, "no view, default, constraint, index or trigger depends on it (pg_depend)")


def _bodies(function):
    found = dependencies.bodies_naming(function)
    if found:
        return Reason("function_bodies", False, "named in the body of " + ", ".join(found))
    return Reason("function_bodies", True, "no other function or procedure names it (pg_proc.prosrc)")


def _own_calls(query, since_minute):
    control = get_experiment(query).control
    return metrics.totals_since(query, since_minute).get(control, {}).get(FUNCTION_CALLS, 0)


def _count(query, function, now):
    """Record PostgreSQL's call count now, beside the application's own calls of this minute so far."""
    counted = dependencies.calls(function)
    own = _own_calls(query, current_minute())
    FunctionCallCount.objects.create(function=function.signature, taken_at=now, database_calls=counted, own_calls=own)
    window = timedelta(hours=get_setting("RETIRE_CALL_WINDOW_HOURS"))
    FunctionCallCount.objects.filter(function=function.signature, taken_at__lt=now - 2 * window - KEPT).delete()
    return counted


def record_counts(now=None):
    """The autopilot's part: a call count of every function whose twin serves everyone, at most one per
    RECORD_EVERY — so that `retire --check` finds one from a window ago. Skipped while track_functions is off."""
    now = now or timezone.now()
    if dependencies.track_functions() == "none":
        return
    for flag in QueryFlag.objects.filter(everyone=True, retired_at__isnull=True):
        query = query_name(flag.name)
        if query not in registry().names():
            continue
        function = dependencies.find(control_function(query)) if _declares_function(query) else None
        recent = FunctionCallCount.objects.filter(taken_at__gt=now - RECORD_EVERY)
        if function is not None and not recent.filter(function=function.signature).exists():
            _count(query, function, now)


def _declares_function(query):
    return bool(getattr(get_experiment(query), "control_function", None))


def _external_calls(query, function):
    if dependencies.track_functions() == "none":
        return Reason("external_calls", None, f"cannot tell: track_functions is 'none'; {ENABLE_TRACKING}")
    now = timezone.now()
    window = timedelta(hours=get_setting("RETIRE_CALL_WINDOW_HOURS"))
    base = FunctionCallCount.objects.filter(function=function.signature, taken_at__lte=now - window).first()
    counted = _count(query, function, now)
    if base is None:
        return Reason(
            "external_calls",
            None,
            f"cannot tell yet: no call count from {_hours(window)} ago; this check recorded one (so does the "
            f"autopilot's tick), check again after {(now + window):%Y-%m-%d %H:%M} UTC",
        )
    database = counted - base.database_calls
    if database < 0:
        return Reason("external_calls", None, "cannot tell: the function statistics were reset within the window")
    own = _own_calls(query, math.floor(base.taken_at.timestamp() / 60)) - base.own_calls
    outside = database - own
    since = f"since {base.taken_at:%Y-%m-%d %H:%M:%S} UTC"
    if outside > 0:
        return Reason(
            "external_calls",
            False,
            f"{outside} calls from outside this application {since} (PostgreSQL counted {database}, "
            f"this application made {own})",
        )
    return Reason("external_calls", True, f"none from outside this application {since} ({database} calls, all its own)")


def _statements(function):
    found = dependencies.statements_naming(function)
    if found is None:
        return Reason("statements", True, "pg_stat_statements is not installed: no statement texts to read")
    if not found:
        return Reason("statements", True, "no statement text in pg_stat_statements names it")
    listed = "; ".join(f"{' '.join(text.split())[:80]!r} ×{calls}" for text, calls in found)
    return Reason(
        "statements", True, f"pg_stat_statements texts that name it (make sure they are this application's): {listed}"
    )


def _hours(delta):
    return f"{delta.total_seconds() / 3600:g} h"
