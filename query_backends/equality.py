"""What "equal" means between the function's answer and the twin's (the contract's last section).

compare() returns a Difference, not a bool: what is missing, what is extra,
which fields changed with both values. Rows are multisets keyed by their first
column unless the query is ordered; numbers compare by value, timestamps as
instants, JSON by value, text byte for byte; two errors of the same kind are equal.
"""

from collections import defaultdict
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
        return not (self.missing or self.extra or self.changed or self.reordered or self.value or self.errors)

    def __bool__(self):
        return not self.equal

    def as_dict(self):
        return {
            "missing": list(self.missing),
            "extra": list(self.extra),
            "changed": [vars(c) for c in self.changed],
            "reordered": self.reordered,
            "value": list(self.value) if self.value else None,
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


def _same(a, b):
    if isinstance(a, bool) != isinstance(b, bool):
        return False  # JSON true is not the number 1
    na, nb = normalize(a), normalize(b)
    if type(na) is not type(nb) and not (na is None or nb is None):
        return False
    return na == nb


def _rows_equal(a, b):
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)


def _row_key(row):
    first = next(iter(row.values()), None) if row else None
    return repr(normalize(first))


def _key_value(row):
    return next(iter(row.values()), None) if row else None


def _compare_rows(control, candidate, ordered):
    by_key = defaultdict(lambda: ([], []))
    for row in control:
        by_key[_row_key(row)][0].append(row)
    for row in candidate:
        by_key[_row_key(row)][1].append(row)
    missing, extra, changed = [], [], []
    for left, right in by_key.values():
        unmatched_right = list(right)
        unmatched_left = []
        for row in left:
            match = next((i for i, other in enumerate(unmatched_right) if _rows_equal(row, other)), None)
            if match is None:
                unmatched_left.append(row)
            else:
                unmatched_right.pop(match)
        while unmatched_left and unmatched_right:  # same key, different fields: say which
            a, b = unmatched_left.pop(0), unmatched_right.pop(0)
            for name in [*a, *(k for k in b if k not in a)]:
                if name not in a or name not in b or not _same(a[name], b[name]):
                    changed.append(FieldChange(_key_value(a), name, a.get(name), b.get(name)))
        missing.extend(unmatched_left)
        extra.extend(unmatched_right)
    reordered = False
    if ordered and not (missing or extra or changed):
        reordered = any(not _rows_equal(a, b) for a, b in zip(control, candidate))
    return Difference(missing=tuple(missing), extra=tuple(extra), changed=tuple(changed), reordered=reordered)


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
    if isinstance(control, list) and isinstance(candidate, list) and not ordered:
        left, right = [normalize(v) for v in control], [normalize(v) for v in candidate]
        if left == right:
            return Difference()
        return Difference(
            missing=tuple(v for v in control if normalize(v) not in right),
            extra=tuple(v for v in candidate if normalize(v) not in left),
            reordered=sorted(map(repr, left)) == sorted(map(repr, right)),
        )
    if isinstance(control, dict) and isinstance(candidate, dict):
        changed = tuple(
            FieldChange(key, "value", control.get(key), candidate.get(key))
            for key in sorted(control.keys() | candidate.keys())
            if key not in control or key not in candidate or not _same(control[key], candidate[key])
        )
        return Difference(changed=changed)
    return Difference() if _same(control, candidate) else Difference(value=(control, candidate))
