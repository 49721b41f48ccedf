"""Flags' state as JSON, exported from one database and applied to another (staging → production).

What travels is what an operator sets: the serving rules, shadow, fallback, rescue, guard thresholds, the note
and the plan. What a database lives through stays: users and groups (their ids differ between databases), a guard
trip, where a plan stands, a retirement. Applying validates every field first (the error names it:
`flags.bu_list.percent: …`) and writes all the flags in one flags.writes transaction.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError

from rollout.experiments import query_name
from rollout.flags.writes import GUARD_LIMITS, check_cohort_ids, guard_limit, write
from rollout.models import QueryFlag
from rollout.operations import OperationError, flags_for
from rollout.routing.actors import percent_keys

FIELDS = (
    "everyone",
    "cohorts",
    "exclusions",
    "staff",
    "superusers",
    "authenticated",
    "percent",
    "percent_key",
    "shadow_percent",
    "fallback",
    "rescue",
    "rescue_after",
    "guard_window",
    "guard_min_sample",
    "guard_max_discrepancy_rate",
    "guard_max_error_rate",
    "guard_max_latency_ratio",
    "note",
    "plan",
)

_GUARD_FIELDS = {field: name for name, (field, *_) in GUARD_LIMITS.items()}


def _plain(value):
    return float(value) if isinstance(value, Decimal) else value


def export(queries=()):
    return {
        "flags": {
            query_name(f.name): {field: _plain(getattr(f, field)) for field in FIELDS} for f in flags_for(queries)
        }
    }


def _clean(query, field, value):
    where = f"flags.{query}.{field}"
    if field not in FIELDS:
        raise OperationError(f"{where}: is not a field that travels; fields are {', '.join(FIELDS)}")
    if field in ("cohorts", "exclusions"):
        if not isinstance(value, dict) or not all(
            isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
            for ids in value.values()
        ):
            raise OperationError(f'{where}: is not an object of whole-number id lists, e.g. {{"site": [3]}}')
        try:
            check_cohort_ids({name: ids for name, ids in value.items() if ids})
        except OperationError as exc:
            raise OperationError(f"{where}: {exc}") from None
        return {name: sorted(ids) for name, ids in value.items() if ids}
    if field == "plan":
        from rollout.lifecycle import plan

        try:
            return plan.parse(value) if value else plan.Plan(())
        except OperationError as exc:
            raise OperationError(f"{where}.{exc}") from None
    if field == "percent_key" and value not in percent_keys():
        raise OperationError(f"{where}: {value!r} is not one of {', '.join(percent_keys())}")
    if field in _GUARD_FIELDS:
        return guard_limit(_GUARD_FIELDS[field], value, where)
    model_field = QueryFlag._meta.get_field(field)
    if isinstance(value, float) and model_field.get_internal_type().endswith("IntegerField") and not value.is_integer():
        raise OperationError(f"{where}: {value!r} is not a whole number")
    if isinstance(value, bool) != (model_field.get_internal_type() == "BooleanField") and value is not None:
        raise OperationError(f"{where}: {value!r} is not a {model_field.get_internal_type().removesuffix('Field')}")
    try:
        return model_field.clean(value, None)
    except ValidationError as exc:
        raise OperationError(f"{where}: {value!r}: {' '.join(exc.messages)}") from None


def apply(data, user=None, source="cli"):
    """Apply exported flags' state; every field is checked before anything is written. Returns the flags."""
    if not isinstance(data, dict) or not isinstance(data.get("flags"), dict) or set(data) != {"flags"}:
        raise OperationError('flags: the file is not {"flags": {QUERY: {FIELD: value}}}')
    values = {}
    for query, fields in data["flags"].items():
        if not isinstance(fields, dict):
            raise OperationError(f"flags.{query}: is not an object of fields")
        values[query] = {field: _clean(query, field, value) for field, value in fields.items()}
    flags = {query_name(f.name): f.name for f in flags_for(list(values))}

    def change(flag):
        from rollout.lifecycle import plan

        fields = []
        for field, value in values[query_name(flag.name)].items():
            if field == "plan":
                fields += plan.put(flag, value)  # a started plan keeps its place
            else:
                setattr(flag, field, value)
                fields.append(field)
        return fields

    return write([flags[q] for q in values], change, user=user, source=source, reason="flags applied from a file")
