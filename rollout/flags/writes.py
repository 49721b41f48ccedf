"""Every write to a query flag goes through here: the CLI, the admin, the API, the guard (and later the autopilot).

write() is the one seam. In one transaction it takes the flag's row lock (SELECT … FOR UPDATE, waiting at
most FLAG_LOCK_TIMEOUT_SECONDS), re-reads the row, lets the change set only its own fields, saves only
those (update_fields) with the version bumped, and records the history. Two writers serialize on the row,
so neither undoes the other: a kill racing a shadow change ends killed with the shadow set. A flag the
guard sent back stays off until `clear-guard` and an explicit enable.
"""

import math
from decimal import Decimal, InvalidOperation

from django.db import OperationalError, transaction
from django.utils import timezone

from rollout.conf import get_setting
from rollout.experiments import flag_name, get_experiment, query_name, registry
from rollout.flags.history import changed_by, values_of
from rollout.lifecycle.stages import stage_of
from rollout.models import FlagChange, QueryFlag
from rollout.operations import OperationError, flag_names
from rollout.routing.actors import cohorts, percent_keys

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout error
QUERY_CANCELED = "57014"  # statement_timeout: the lock wait outlasted the statement's own limit


class FlagBusy(OperationError):
    """Another transaction held the flag's row past the lock timeout; nothing was changed."""


class StaleFlag(OperationError):
    """The flag changed since the form was opened; nothing was changed."""


class WritingFunction(OperationError):
    """The query's function may write: running it a second time (shadow, rescue) would write twice."""


class Retired(OperationError):
    """The query is retired (its function dropped): only its retirement migration changes its flag."""


class GuardTripped(OperationError):
    """The guard sent the flag back: only clear-guard, then an explicit enable, turns it on again."""


def write(names, change, *, user=None, source="code", reason="", expected_version=None):
    """Apply change(flag) → the fields it set, to each named flag under its row lock. Returns the flags.

    expected_version: refuse (StaleFlag) when the row is no longer at this version (a form opened before).
    """
    saved = {}
    try:
        with transaction.atomic(), changed_by(user, source, reason):
            _limit_lock_wait()
            for name in sorted(set(names)):  # one lock order for every writer: two multi-flag writes never deadlock
                flag = QueryFlag.objects.select_for_update().filter(name=name).first()
                if flag is None:
                    raise OperationError(f"no flag {name}: run `python manage.py migrate` to create it")
                if expected_version is not None and flag.version != expected_version:
                    raise StaleFlag(_what_changed(flag, expected_version))
                before = values_of(flag)
                was = {field.name: getattr(flag, field.name) for field in QueryFlag._meta.concrete_fields}
                fields = [f for f in change(flag) or () if getattr(flag, f) != was[f]]  # a no-op is no new version
                if fields:
                    _refuse_undoing_a_trip(flag, before)
                    _refuse_changing_retired(flag, before, fields)
                    _refuse_running_a_writer_twice(flag, fields)
                    fields += _remember_kill(flag, before)
                    fields += _stamp_stage(flag, before, was)
                    flag._rollout_before = before  # the history's diff, without reading the row again
                    flag.save(update_fields=fields)  # and the version, bumped
                saved[name] = flag
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
            raise FlagBusy(
                f"flag {', '.join(sorted({query_name(name) for name in names}))}: another change held it for more than "
                f"{get_setting('FLAG_LOCK_TIMEOUT_SECONDS'):g} s; nothing was changed, try again"
            ) from None
        raise
    return [saved[name] for name in names]


def _limit_lock_wait():
    from django.db import connection

    lock_ms = int(get_setting("FLAG_LOCK_TIMEOUT_SECONDS") * 1000)
    with connection.cursor() as cursor:
        # Local to this transaction: a lock wait past it is LockNotAvailable, not a hang. The statement's own
        # limit (the service's statement_timeout, often the same few seconds) is raised above it here, so the
        # wait ends as the lock timeout it is rather than as a cancelled statement.
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
            [f"{lock_ms}ms", f"{lock_ms + 5000}ms"],
        )


def _refuse_undoing_a_trip(flag, before):
    if flag.guard_tripped_at is not None and before["everyone"] is False and flag.everyone is not False:
        raise GuardTripped(
            f"{flag.name}: the guard sent it back to the control at {flag.guard_tripped_at:%Y-%m-%d %H:%M:%S} "
            f"({flag.guard_reason}); run `rollout clear-guard {query_name(flag.name)}` first, then enable it"
        )


def _refuse_changing_retired(flag, before, fields):
    """A retired query's function is gone: only its retirement migration (forward or back) changes its flag."""
    if before["retired_at"] and flag.retired_at and set(fields) - {"note"}:
        refused = Retired(
            f"{flag.name}: retired {flag.retired_at:%Y-%m-%d %H:%M:%S}, its function is dropped; {undo_of(flag)} "
            "to change its flag"
        )
        refused.undo = undo_of(flag)
        raise refused


def undo_of(flag):
    """How the flag's retirement is brought back: migrating it back, unless it was retired another way."""
    return (flag.retired_from or {}).get("undo") or "migrate the retirement back"


def _remember_kill(flag, before):
    """A kill (by anyone: CLI, admin, guard) keeps what `everyone` was, so the stage stays what it was; lifting
    it forgets it."""
    if flag.everyone is False:
        killed_from = flag.killed_from if before["everyone"] is False else before["everyone"]
    else:
        killed_from = None
    if killed_from == flag.killed_from:
        return []
    flag.killed_from = killed_from
    return ["killed_from"]


def _stamp_stage(flag, before, was):
    """Time in stage starts again when the write moves the flag to another lifecycle or plan stage (unless the
    write sets it itself: a retirement migrated back gives the stage its time back). A kill, and the enable that
    lifts it, change no stage."""
    if flag.stage_since != was["stage_since"] or (
        stage_of(before, killed_from=was["killed_from"]) == stage_of(values_of(flag), killed_from=flag.killed_from)
        and flag.plan_stage == was["plan_stage"]
    ):
        return []
    flag.stage_since = timezone.now()
    return ["stage_since"]


def _refuse_running_a_writer_twice(flag, fields):
    shadow = "shadow_percent" in fields and flag.shadow_percent > 0
    rescue = "rescue" in fields and flag.rescue
    if not (shadow or rescue):
        return
    reason = writes_for(query_name(flag.name))
    if reason:
        raise WritingFunction(f"{query_name(flag.name)}: {'shadow' if shadow else 'rescue'} refused: {reason}")


def writes_for(query):
    """Why the query's control may write (so it must never run twice), or None. An experiment says so through an
    optional `writes` attribute (rollout.Query reads it from pg_proc)."""
    try:
        experiment = get_experiment(query)
    except LookupError:
        return None
    return getattr(experiment, "writes", None)


def _what_changed(flag, seen):
    changes = FlagChange.objects.filter(flag_name=flag.name, version__gt=seen).order_by("version", "id")
    fields = sorted({field for change in changes for field in change.changes})
    authors = sorted({change.user.get_username() if change.user else change.source for change in changes})
    return (
        f"{flag.name} changed since this form was opened (version {seen} → {flag.version}): "
        f"{', '.join(fields) or 'memberships'} by {', '.join(authors) or 'another writer'}; nothing was saved, "
        "reload the form"
    )


def _by_query(queries, change, user, source, reason):
    return write(flag_names(queries), change, user=user, source=source, reason=reason)


def _set(**values):
    def change(flag):
        for field, value in values.items():
            setattr(flag, field, value)
        return list(values)

    return change


def kill(queries=(), user=None, source="cli", reason="kill switch"):
    """Every named query (or all) back to the control for everyone; cohorts are kept for later.

    Each flag in a transaction of its own: a row another writer holds must not keep the others from being
    killed. The busy ones are named afterwards (FlagBusy) once every other flag is killed. A retired query has
    no control left to go back to: the kill of all queries passes it by; one named is refused (Retired), after
    the others are killed."""
    killed, busy, retired, undo = [], [], [], set()
    for name in flag_names(queries):
        try:
            killed += write([name], _set(everyone=False, killed_by=source), user=user, source=source, reason=reason)
        except FlagBusy:
            busy.append(query_name(name))
        except Retired as refused:
            retired.append(query_name(name))
            undo.add(refused.undo)
    done = f"; the others were killed: {', '.join(query_name(f.name) for f in killed)}" if killed else ""
    if busy:
        raise FlagBusy(
            f"flag {', '.join(busy)}: another change held it for more than "
            f"{get_setting('FLAG_LOCK_TIMEOUT_SECONDS'):g} s; it was NOT killed, run the kill again{done}"
        )
    if retired and queries:
        raise Retired(
            f"flag {', '.join(retired)}: retired (its function is dropped), no control to send it back to; "
            f"{' or '.join(sorted(undo))} to change its flag{done}"
        )
    return killed


def enable(queries, user=None, source="cli"):
    return _by_query(queries, _set(everyone=True, killed_by=""), user, source, "enable for everyone")


def disable(queries, user=None, source="cli"):
    """Back to the cohort rules (everyone=unknown): neither forced on nor killed."""
    return _by_query(queries, _set(everyone=None, killed_by=""), user, source, "back to cohort rules")


def _percentage(value, name, top=Decimal(100), hint=""):
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise OperationError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite() or not 0 <= number <= top:
        raise OperationError(f"{name}: {value} is not between 0 and {top}{hint}")
    if number != number.quantize(Decimal("0.1")):  # stored with one decimal, as waffle does: never round silently
        raise OperationError(f"{name}: {value} has more than one decimal place")
    return number


def set_percent(query, percent, key=None, user=None, source="cli"):
    # Stored as DecimalField(3, 1), as waffle does.
    percent = _percentage(percent, "percent", Decimal("99.9"), " (for everyone use `rollout enable`)")
    if key is not None and key not in percent_keys():
        raise OperationError(f"key: {key!r} is not one of {', '.join(percent_keys())}")
    values = {"percent": percent, **({"percent_key": key} if key else {})}
    return _by_query([query], _set(**values), user, source, f"percent {percent}")[0]


def set_shadow(query, percent, user=None, source="cli"):
    percent = _percentage(percent, "shadow percent")
    return _by_query([query], _set(shadow_percent=percent), user, source, f"shadow {percent}")[0]


def set_rescue(query, on, after=None, user=None, source="cli"):
    """Opt a query in to (or out of) rescue; `after`: healthy comparisons the guard must have seen first."""
    values = {"rescue": bool(on)}
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 1:
            raise OperationError(f"after: {after!r} is not a whole number of comparisons of 1 or more")
        values["rescue_after"] = after
    reason = f"rescue {'on' if on else 'off'}" + (f" after {after}" if after is not None else "")
    return _by_query([query], _set(**values), user, source, reason)[0]


def check_cohort_ids(ids_by_cohort):
    """Refuse undeclared cohorts and, where the resolver can tell, ids that do not exist."""
    declared = cohorts()
    unknown = sorted(set(ids_by_cohort) - set(declared))
    if unknown:
        raise OperationError(
            f"cohort: {', '.join(unknown)} is not one of {', '.join(declared) or '(the resolver declares none)'}"
        )
    for name, ids in ids_by_cohort.items():
        cohort = declared[name]
        if ids and cohort.existing is not None:
            missing = sorted(set(ids) - set(cohort.existing(ids)))
            if missing:
                raise OperationError(f"cohort {name}: no {cohort.label} {', '.join(map(str, missing))}")


def change_cohorts(query, add=None, remove=None, excluded=False, user=None, source="cli"):
    """Add and remove ids of several cohorts ({cohort name: ids}) in one change of one flag."""
    add, remove = add or {}, remove or {}
    check_cohort_ids({**dict.fromkeys(remove, ()), **add})
    if not any(add.values()) and not any(remove.values()):
        raise OperationError("cohort: give at least one id to add or remove")
    field = "exclusions" if excluded else "cohorts"

    def change(flag):
        current = dict(getattr(flag, field) or {})
        for name in set(add) | set(remove):
            ids = (set(current.get(name, ())) | set(add.get(name, ()))) - set(remove.get(name, ()))
            if ids:
                current[name] = sorted(ids)
            else:
                current.pop(name, None)
        setattr(flag, field, current)
        return [field]

    names = ", ".join(sorted(set(add) | set(remove)))
    return _by_query([query], change, user, source, f"{'exclusions' if excluded else 'cohort'} {names}")[0]


def change_cohort(query, cohort, add=(), remove=(), excluded=False, user=None, source="cli"):
    return change_cohorts(query, {cohort: add}, {cohort: remove}, excluded, user, source)


INT_MAX = 2**31 - 1  # PostgreSQL's integer
GUARD_LIMITS = {
    "window": ("guard_window", int, 1, INT_MAX),
    "min_sample": ("guard_min_sample", int, 1, INT_MAX),
    "max_discrepancy_rate": ("guard_max_discrepancy_rate", float, 0, 1),
    "max_error_rate": ("guard_max_error_rate", float, 0, 1),
    "max_latency_ratio": ("guard_max_latency_ratio", float, 0, None),
}


def guard_limit(name, value, where=None):
    """One guard threshold checked (a number, finite, whole where it counts, within its bounds), named `where`."""
    _, kind, low, high = GUARD_LIMITS[name]
    where = where or name
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise OperationError(f"{where}: {value!r} is not a {'whole number' if kind is int else 'number'}") from None
    if not math.isfinite(number):  # a NaN threshold is never reached: the guard would never trip
        raise OperationError(f"{where}: {value!r} is not a number")
    if number < low or (high is not None and number > high):
        raise OperationError(f"{where}: {value} is not " + (f"between {low} and {high}" if high else f"{low} or more"))
    return number


def set_guard(query, user=None, source="cli", **limits):
    """Change a flag's guard thresholds (window=, min_sample=, max_discrepancy_rate=, max_error_rate=,
    max_latency_ratio=)."""
    unknown = sorted(set(limits) - set(GUARD_LIMITS))
    if unknown:
        raise OperationError(f"guard: {', '.join(unknown)} is not one of {', '.join(GUARD_LIMITS)}")
    values = {GUARD_LIMITS[name][0]: guard_limit(name, value) for name, value in limits.items()}
    return _by_query([query], _set(**values), user, source, "guard " + ", ".join(sorted(limits)))[0]


def trip(name, reason):
    """The guard's write: the control for everyone, once, however many workers see the threshold.

    Returns whether this call tripped it."""
    tripped = []

    def change(flag):
        if flag.guard_tripped_at is not None:
            return []
        tripped.append(flag)
        return list(_set(everyone=False, killed_by="guard", guard_tripped_at=timezone.now(), guard_reason=reason)(flag))

    write([name], change, source="guard", reason=reason)
    return bool(tripped)


def clear_guard(query, user=None, source="cli"):
    """Forget the trip and the window. A flag the guard turned off stays off until an operator turns it on."""
    from rollout.models import GuardSample

    with transaction.atomic():
        [flag] = _by_query([query], _set(guard_tripped_at=None, guard_reason=""), user, source, "guard cleared")
        GuardSample.objects.filter(flag=flag.name).delete()
    return flag


def save_form(name, values, seen_version, user=None, source="admin"):
    """The admin's write: only the fields the operator changed, refused when the flag moved past the form."""
    return write([name], _set(**values), user=user, source=source, expected_version=seen_version)[0]


def ensure_flags(source="migration", using="default", names=None):
    """A flag for every registered query (or those named) on that database, inactive (the control serves).
    Returns the names created."""
    created = []
    key = next(iter(cohorts()), None) or "user"  # sticky by the resolver's first cohort, as the host declares
    with changed_by(None, source, "created for a registered query"):
        for name in registry().names() if names is None else names:
            _, was_created = QueryFlag.objects.using(using).get_or_create(
                name=flag_name(name), defaults={"note": name, "percent_key": key}
            )
            if was_created:
                created.append(name)
    return created


def forget(query, user=None, source="cli", missing_ok=False):
    """Delete the flag and the discrepancies of a query that is no longer registered (e.g. the demo's).

    A name with neither is refused unless missing_ok: it is a typo far more often than a query already forgotten.
    """
    from rollout.models import Discrepancy

    if query in registry().names():
        raise OperationError(
            f"query: {query} is still registered; only the records of a query no longer registered can be forgotten"
        )
    with transaction.atomic(), changed_by(user, source, "query no longer registered"):
        _, flags = QueryFlag.objects.filter(name=flag_name(query)).delete()
        _, discrepancies = Discrepancy.objects.filter(query=query).delete()
        if not (flags or discrepancies or missing_ok):
            raise OperationError(f"query: {query} has no flag and no discrepancies; nothing to forget")
    return {
        "flags": flags.get(QueryFlag._meta.label, 0),
        "discrepancies": discrepancies.get(Discrepancy._meta.label, 0),
    }
