"""What "equal" means between the function's answer and the twin's (the contract's last section).

compare() returns a Difference, not a bool: what is missing, what is extra,
which fields changed with both values; `Difference.equal` says whether there is
none. Where no order is stated, answers are multisets: rows keyed by their first
column, lists of scalars by value, each element counted as often as it occurs
(a permutation is equal; one more or one fewer duplicate is not). Where an order
is stated, the same multiset in another order is `reordered`. Numbers compare by
value, timestamps as instants, JSON by value, text byte for byte; two errors of
the same kind are equal.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal


@dataclass(frozen=True)
class FieldChange:
    key: object
    field: str
    control: object
    candidate: object


@dataclass(frozen=True)
class Difference:
    missing: tuple = ()  # in the control (the function), not in the candidate (the twin)
    extra: tuple = ()  # in the candidate, not in the control
    changed: tuple = ()  # FieldChange
    reordered: bool = False
    value: tuple | None = None  # (control, candidate) for scalar answers that differ
    errors: tuple | None = None  # (control error kind or None, candidate error kind or None)

    @property
    def equal(self):
        """True when the two answers are equal: nothing missing, extra, changed, reordered or failing differently."""
        return not (self.missing or self.extra or self.changed or self.reordered or self.value or self.errors)

    def __bool__(self):
        # Whether a truthy Difference means "differs" or "equal" is a guess every reader gets wrong half the time.
        raise TypeError("a Difference has no truth value: ask difference.equal")

    @property
    def shape(self):
        """What makes two differences the same one: which parts differ (fields, error kinds), not the data."""
        if self.errors:
            return "errors:" + "/".join(str(k) for k in self.errors)
        parts = [name for name in ("missing", "extra", "reordered", "value") if getattr(self, name)]
        fields = sorted({change.field for change in self.changed})
        return "+".join(parts) + (":" + ",".join(fields) if fields else "")

    def as_dict(self):
        return {
            "missing": list(self.missing),
            "extra": list(self.extra),
            "changed": [vars(c) for c in self.changed],
            "reordered": self.reordered,
            "value": {"control": self.value[0], "candidate": self.value[1]} if self.value else None,
            "errors": list(self.errors) if self.errors else None,
        }


def error_kind(error):
    return getattr(error, "kind", None) or type(error).__name__


def normalize(value):
    """A comparable form: Decimal for numbers, UTC instants, JSON by value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value.normalize() if value.is_finite() else value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return ("naive", value)  # never equal to an instant
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


def canonical(value):
    """A hashable form, equal for two values exactly when they are equal: the multiset key."""
    if isinstance(value, dict):
        return ("object", frozenset((k, canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(canonical(v) for v in value))
    value = normalize(value)
    # The type keeps JSON true apart from the number 1, and text apart from a number.
    return (type(value).__name__, value)


def _same(a, b):
    return canonical(a) == canonical(b)


def _row_key(row):
    return canonical(next(iter(row.values()), None)) if row else None


def _key_value(row):
    return next(iter(row.values()), None) if row else None


def _counted(values):
    """(multiset of canonical forms, first original value of each) — a Counter keeps duplicates counted."""
    firsts = {}
    for value in values:
        firsts.setdefault(canonical(value), value)
    return Counter(canonical(v) for v in values), firsts


def _multiset_difference(control, candidate):
    """(missing, extra): elements of control not matched in candidate and back, duplicates counted."""
    left, left_firsts = _counted(control)
    right, right_firsts = _counted(candidate)
    missing = tuple(left_firsts[k] for k, n in (left - right).items() for _ in range(n))
    extra = tuple(right_firsts[k] for k, n in (right - left).items() for _ in range(n))
    return missing, extra


def _compare_rows(control, candidate, ordered):
    by_key = defaultdict(lambda: ([], []))
    for row in control:
        by_key[_row_key(row)][0].append(row)
    for row in candidate:
        by_key[_row_key(row)][1].append(row)
    missing, extra, changed = [], [], []
    for left, right in by_key.values():
        unmatched_left, unmatched_right = (list(rows) for rows in _multiset_difference(left, right))
        while unmatched_left and unmatched_right:  # same key, different fields: say which
            a, b = unmatched_left.pop(0), unmatched_right.pop(0)
            for name in [*a, *(k for k in b if k not in a)]:
                if name not in a or name not in b or not _same(a[name], b[name]):
                    changed.append(FieldChange(_key_value(a), name, a.get(name), b.get(name)))
        missing.extend(unmatched_left)
        extra.extend(unmatched_right)
    reordered = (
        ordered
        and not (missing or extra or changed)
        and [canonical(r) for r in control] != [canonical(r) for r in candidate]
    )
    return Difference(missing=tuple(missing), extra=tuple(extra), changed=tuple(changed), reordered=reordered)


def _compare_scalar_lists(control, candidate, ordered):
    missing, extra = _multiset_difference(control, candidate)
    reordered = (
        ordered and not (missing or extra) and [canonical(v) for v in control] != [canonical(v) for v in candidate]
    )
    return Difference(missing=missing, extra=extra, reordered=reordered)


def _is_rows(value):
    return isinstance(value, list) and all(isinstance(row, dict) for row in value)


def compare(control, candidate, ordered=False):
    """Compare the control's answer (the function) with the candidate's (the twin). Either may be an exception."""
    control_failed, candidate_failed = isinstance(control, BaseException), isinstance(candidate, BaseException)
    if control_failed or candidate_failed:
        kinds = (error_kind(control) if control_failed else None, error_kind(candidate) if candidate_failed else None)
        return Difference() if kinds[0] == kinds[1] else Difference(errors=kinds)
    if _is_rows(control) and _is_rows(candidate) and (control or candidate):
        return _compare_rows(control, candidate, ordered)
    if isinstance(control, list) and isinstance(candidate, list):
        return _compare_scalar_lists(control, candidate, ordered)
    if isinstance(control, dict) and isinstance(candidate, dict):
        changed = tuple(
            FieldChange(key, "value", control.get(key), candidate.get(key))
            for key in sorted(control.keys() | candidate.keys())
            if key not in control or key not in candidate or not _same(control[key], candidate[key])
        )
        return Difference(changed=changed)
    return Difference() if _same(control, candidate) else Difference(value=(control, candidate))
