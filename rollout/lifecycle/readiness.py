"""Whether a query's function can be dropped — every reason, from the rollout's own records and the database itself.

Ready only when every check says so:
- the candidate has served everyone for RETIRE_AFTER_HOURS, with at least RETIRE_MIN_COMPARISONS shadow
  comparisons in that stage, and no open discrepancy;
- nothing in the database depends on the function (pg_depend) or names it in its body (pg_proc.prosrc);
- nothing outside this application called it over the last RETIRE_CALL_WINDOW_HOURS: PostgreSQL's call count
  (pg_stat_user_functions) minus the application's own runs of it (counted by rollout wherever it runs a
  control). Each check records a count; the window runs from the newest count at least that old. The two
  sides are read in an order (_Reading) that can only overstate the calls from outside, never hide one; by how
  much at most is known, and a remainder within it is "cannot tell", not ready.
"Cannot tell" is not ready: with track_functions off, nobody knows who else calls the function.
"""

import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from rollout.conf import get_setting
from rollout.experiments import get_experiment, query_name, registry
from rollout.lifecycle import evidence, stages
from rollout.metrics.rollups import FUNCTION_CALLS, metrics
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

    @property
    def retired(self):
        """Already retired: there is nothing left to be ready for (and the check is still not a go-ahead)."""
        return any(reason.check == "retired" for reason in self.reasons)

    def text(self):
        if self.retired:  # one reason, and not a "no": the line says it all
            return f"{self.query} ({self.function}): RETIRED already: {self.reasons[0].text}"
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
            query,
            signature,
            (
                Reason(
                    "retired", False, f"its function was dropped {flag.retired_at:%Y-%m-%d %H:%M}; nothing to retire"
                ),
            ),
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
    # A kill keeps the stage and its time (the clock goes on after it is lifted), but while it holds the function
    # is what serves: never ready then.
    killed = " (killed: the function serves)" if flag.everyone is False else ""
    served = life["stage"] == stages.EVERYONE and life["time_in_stage"] >= hours * 3600 and not killed
    yield Reason(
        "served_everyone",
        served,
        f"stage {life['stage']} for {life['time_in_stage_text']}{killed} (needs everyone for {hours:g} h)",
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


@dataclass(frozen=True)
class _Reading:
    """PostgreSQL's call count of one function read between two reads of the application's own calls, each
    SETTLE seconds apart: own calls counted before the first read were made before it, so PostgreSQL has
    counted them by its read; own calls it counted were made before its read, so the application has counted
    them by the second read. The own calls counted between the two reads (`in_flight`) are the ones the window
    cannot place on either side of PostgreSQL's read."""

    database: int
    own_before: dict  # {minute: the application's own calls counted in minutes from it on} at the first read
    own_after: dict  # the same at the second read


def _read(readings, minutes):
    """A _Reading of each (query, function) in `readings`, with own calls summed from each of `minutes`;
    one pair of pauses serves them all."""

    def own():
        return {key: {m: _own_calls(key[0], m) for m in minutes} for key in readings}

    settle = get_setting("RETIRE_SETTLE_SECONDS")
    before = own()
    time.sleep(settle)
    database = {key: dependencies.calls(key[1]) for key in readings}
    time.sleep(settle)
    after = own()
    return {key: _Reading(database[key], before[key], after[key]) for key in readings}


def _record(query, function, now, reading, minute):
    """Keep a reading as a window's possible start: own calls as of the second read (so every own call
    PostgreSQL had counted is subtracted), and how many were in flight."""
    window = timedelta(hours=get_setting("RETIRE_CALL_WINDOW_HOURS"))
    FunctionCallCount.objects.create(
        function=function.signature,
        taken_at=now,
        database_calls=reading.database,
        own_calls=reading.own_after[minute],
        own_in_flight=reading.own_after[minute] - reading.own_before[minute],
    )
    FunctionCallCount.objects.filter(function=function.signature, taken_at__lt=now - 2 * window - KEPT).delete()


def record_counts(now=None):
    """The autopilot's part: a call count of every function whose twin serves everyone, at most one per
    RECORD_EVERY — so that `retire --check` finds one from a window ago. Skipped while track_functions is off."""
    now = now or timezone.now()
    if dependencies.track_functions() == "none":
        return
    due = []
    for flag in QueryFlag.objects.filter(everyone=True, retired_at__isnull=True):
        query = query_name(flag.name)
        if query not in registry().names():
            continue
        function = dependencies.find(control_function(query)) if _declares_function(query) else None
        recent = FunctionCallCount.objects.filter(taken_at__gt=now - RECORD_EVERY)
        if function is not None and not recent.filter(function=function.signature).exists():
            due.append((query, function))
    minute = _minute(now)
    for (query, function), reading in _read(due, [minute]).items() if due else ():
        _record(query, function, now, reading, minute)


def _declares_function(query):
    return bool(getattr(get_experiment(query), "control_function", None))


def _minute(moment):
    return math.floor(moment.timestamp() / 60)


def _external_calls(query, function):
    """PostgreSQL's calls of the function over the window minus the application's own: never fewer than the
    calls from outside (see _Reading), and "cannot tell" when own calls in flight at the window's edges could
    account for what is left, or where PostgreSQL does not count the function's calls at all."""
    tracking = dependencies.track_functions()
    if tracking == "none":
        return Reason("external_calls", None, f"cannot tell: track_functions is 'none'; {ENABLE_TRACKING}")
    if function.language == "sql":
        return Reason(
            "external_calls",
            None,
            "cannot tell: it is a SQL-language function, which PostgreSQL may inline into the statement that calls "
            "it, and an inlined call is never counted (pg_stat_user_functions), whatever track_functions says",
        )
    if function.language in ("c", "internal") and tracking != "all":
        return Reason(
            "external_calls",
            None,
            f"cannot tell: track_functions = '{tracking}' counts only procedural-language functions, and this one "
            f"is {function.language}; set it to 'all'",
        )
    now = timezone.now()
    window = timedelta(hours=get_setting("RETIRE_CALL_WINDOW_HOURS"))
    base = FunctionCallCount.objects.filter(function=function.signature, taken_at__lte=now - window).first()
    minutes = [_minute(now)] + ([_minute(base.taken_at)] if base else [])
    reading = _read([(query, function)], minutes)[query, function]
    _record(query, function, now, reading, minutes[0])
    if base is None:
        return Reason(
            "external_calls",
            None,
            f"cannot tell yet: no call count from {_hours(window)} ago; this check recorded one (so does the "
            f"autopilot's tick), check again after {(now + window):%Y-%m-%d %H:%M} UTC",
        )
    database = reading.database - base.database_calls
    if database < 0:
        return Reason("external_calls", None, "cannot tell: the function statistics were reset within the window")
    start = minutes[1]
    own = reading.own_before[start] - base.own_calls  # every own call PostgreSQL can have counted, at most
    in_flight = base.own_in_flight + reading.own_after[start] - reading.own_before[start]
    outside = database - own  # never fewer than the calls from outside; more by at most `in_flight`
    since = f"since {base.taken_at:%Y-%m-%d %H:%M:%S} UTC"
    counted = f"PostgreSQL counted {database}, this application made {own}"
    if outside - in_flight > 0:
        least = "" if not in_flight else "at least "
        return Reason(
            "external_calls",
            False,
            f"{least}{outside - in_flight} calls from outside this application {since} ({counted})",
        )
    if outside < 0:
        return Reason(
            "external_calls",
            None,
            f"cannot tell: PostgreSQL has not yet counted {-outside} of this application's calls {since} "
            f"({counted}; a session still inside a transaction?); check again",
        )
    if outside > 0:
        return Reason(
            "external_calls",
            None,
            f"cannot tell: {outside} calls unaccounted for {since} ({counted}), no more than the {in_flight} of "
            "its own that were in flight at the window's edges; check again",
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
