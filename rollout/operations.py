"""What operators do to flags. The admin actions and the `rollout` command are thin layers over these."""

from decimal import Decimal, InvalidOperation

from django.db import transaction

from rollout.actors import PERCENT_KEYS
from rollout.experiments import flag_name, registry
from rollout.flag_state import COHORT_FIELDS
from rollout.history import changed_by
from rollout.models import QueryFlag


class OperationError(ValueError):
    """A bad operator request; the message names the parameter."""


def flags_for(queries):
    """The flags of the named queries (all when none are named); unknown names are an error."""
    known = registry().names()
    unknown = [q for q in queries if q not in known]
    if unknown:
        raise OperationError(f"unknown query {', '.join(unknown)}; known: {', '.join(known)}")
    names = [flag_name(q) for q in (queries or known)]
    found = {f.name: f for f in QueryFlag.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise OperationError(f"no flag {', '.join(missing)}: run `python manage.py migrate` to create it")
    return [found[n] for n in names]


def _percentage(value, name, top=Decimal(100), hint=""):
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise OperationError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite() or not 0 <= number <= top:
        raise OperationError(f"{name}: {value} is not between 0 and {top}{hint}")
    return number


def _save_each(flags, user, source, reason, change):
    with transaction.atomic(), changed_by(user, source, reason):
        for flag in flags:
            change(flag)
            flag.save()
    return flags


def kill(queries=(), user=None, source="cli", reason="kill switch"):
    """Every named query (or all) back to the control for everyone; cohorts are kept for later."""
    return _save_each(flags_for(queries), user, source, reason, lambda f: setattr(f, "everyone", False))


def enable(queries, user=None, source="cli"):
    return _save_each(flags_for(queries), user, source, "enable for everyone", lambda f: setattr(f, "everyone", True))


def disable(queries, user=None, source="cli"):
    """Back to the cohort rules (waffle's everyone=unknown): neither forced on nor killed."""
    return _save_each(flags_for(queries), user, source, "back to cohort rules", lambda f: setattr(f, "everyone", None))


def set_percent(query, percent, key=None, user=None, source="cli"):
    # waffle stores the percentage as DecimalField(3, 1).
    percent = _percentage(percent, "percent", Decimal("99.9"), " (for everyone use `rollout enable`)")
    if key is not None and key not in PERCENT_KEYS:
        raise OperationError(f"key: {key!r} is not one of {', '.join(PERCENT_KEYS)}")

    def change(flag):
        flag.percent = percent
        flag.percent_key = key or flag.percent_key

    return _save_each(flags_for([query]), user, source, f"percent {percent}", change)[0]


def set_shadow(query, percent, user=None, source="cli"):
    percent = _percentage(percent, "shadow percent")
    return _save_each(
        flags_for([query]), user, source, f"shadow {percent}", lambda f: setattr(f, "shadow_percent", percent)
    )[0]


def change_cohorts(query, add=None, remove=None, excluded=False, user=None, source="cli"):
    """Add and remove ids of several cohorts ({field: ids}) in one change of one flag."""
    add, remove = add or {}, remove or {}
    unknown = sorted((set(add) | set(remove)) - set(COHORT_FIELDS))
    if unknown:
        raise OperationError(f"cohort: {', '.join(unknown)} is not one of {', '.join(COHORT_FIELDS)}")
    if not any(add.values()) and not any(remove.values()):
        raise OperationError("cohort: give at least one id to add or remove")
    prefix = "excluded_" if excluded else ""

    def change(flag):
        for field in set(add) | set(remove):
            current = set(getattr(flag, prefix + field))
            setattr(flag, prefix + field, sorted((current | set(add.get(field, ()))) - set(remove.get(field, ()))))

    return _save_each(
        flags_for([query]), user, source, f"cohort {prefix or ''}{', '.join(sorted(set(add) | set(remove)))}", change
    )[0]


def change_cohort(query, field, add=(), remove=(), excluded=False, user=None, source="cli"):
    return change_cohorts(query, {field: add}, {field: remove}, excluded, user, source)


def ensure_flags(source="migration"):
    """A flag for every registered query, inactive (the control serves). Returns the names created."""
    created = []
    with changed_by(None, source, "created for a registered query"):
        for name in registry().names():
            _, was_created = QueryFlag.objects.get_or_create(
                name=flag_name(name), defaults={"note": name, "superusers": False}
            )
            if was_created:
                created.append(name)
    return created


GUARD_LIMITS = {
    "window": ("guard_window", int, 1, None),
    "min_sample": ("guard_min_sample", int, 1, None),
    "max_discrepancy_rate": ("guard_max_discrepancy_rate", float, 0, 1),
    "max_error_rate": ("guard_max_error_rate", float, 0, 1),
}


def set_guard(query, user=None, source="cli", **limits):
    """Change a flag's guard thresholds (window=, min_sample=, max_discrepancy_rate=, max_error_rate=)."""
    unknown = sorted(set(limits) - set(GUARD_LIMITS))
    if unknown:
        raise OperationError(f"guard: {', '.join(unknown)} is not one of {', '.join(GUARD_LIMITS)}")
    values = {}
    for name, value in limits.items():
        field, kind, low, high = GUARD_LIMITS[name]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise OperationError(f"{name}: {value!r} is not a number") from None
        if number < low or (high is not None and number > high):
            raise OperationError(f"{name}: {value} is not between {low} and {high if high is not None else 'any'}")
        values[field] = number

    def change(flag):
        for field, number in values.items():
            setattr(flag, field, number)

    return _save_each(flags_for([query]), user, source, "guard " + ", ".join(sorted(limits)), change)[0]


def forget(query, user=None, source="cli"):
    """Delete the flag and the discrepancies of a query that is no longer registered (e.g. the demo's)."""
    from rollout.models import Discrepancy

    if query in registry().names():
        raise OperationError(f"query: {query} is still registered; only a retired query's records can be forgotten")
    with transaction.atomic(), changed_by(user, source, "query no longer registered"):
        _, flags = QueryFlag.objects.filter(name=flag_name(query)).delete()
        _, discrepancies = Discrepancy.objects.filter(query=query).delete()
    return {
        "flags": flags.get(QueryFlag._meta.label, 0),
        "discrepancies": discrepancies.get(Discrepancy._meta.label, 0),
    }
