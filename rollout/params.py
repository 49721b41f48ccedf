"""Typed query parameters, validated before any SQL runs.

`clean` is strict (the Python API passes real types); `parse` reads the text
the CLI and the HTTP API receive, then cleans it.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from rollout.errors import InvalidQueryParams

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_NULL = {"null", "none"}
_MISSING = object()
# A parameter left out is not passed: the function's own default applies (and the twin's, which must agree).
SQL_DEFAULT = type("SqlDefault", (), {"__repr__": lambda self: "SQL_DEFAULT"})()
_INT64_DIGITS = len(str(INT64_MAX))


def _abridged(text, limit=40):
    """Bad input quoted back in an error, cut short: an error message must not echo megabytes."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@dataclass(frozen=True)
class Param:
    REQUIRED = _MISSING

    name: str
    type: type
    default: object = _MISSING
    nullable: bool = False
    choices: tuple[str, ...] = ()  # case-insensitive, for str parameters
    item: type | None = None  # for list parameters: the type of each element

    @property
    def required(self):
        return self.default is _MISSING

    def _reject(self, problem):
        raise InvalidQueryParams(self.name, problem)

    def clean(self, value):
        # The common cases in one frame (every routed call cleans its parameters); the checks below say the same.
        kind = type(value)
        if kind is self.type:
            if kind is int and INT64_MIN <= value <= INT64_MAX:
                return value
            if kind is str and not self.choices and "\x00" not in value:
                return value
        if value is None:
            if self.nullable:
                return None
            self._reject("must not be None")
        return _CLEANERS[self.type.__name__](self, value)

    def _clean_int(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            self._reject(f"expected an integer, got {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            self._reject(f"integer outside the 64-bit range [{INT64_MIN}, {INT64_MAX}]")
        return value

    def _clean_bool(self, value):
        if not isinstance(value, bool):
            self._reject(f"expected a boolean, got {type(value).__name__}")
        return value

    def _clean_str(self, value):
        if not isinstance(value, str):
            self._reject(f"expected a string, got {type(value).__name__}")
        if "\x00" in value:
            self._reject("contains a NUL character, which PostgreSQL text cannot hold")
        if self.choices and value.lower() not in self.choices:
            self._reject(f"{value!r} is not one of {', '.join(self.choices)} (case-insensitive)")
        return value

    def _clean_float(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._reject(f"expected a number, got {type(value).__name__}")
        return float(value)

    def _clean_Decimal(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            self._reject(f"expected a Decimal or an integer, got {type(value).__name__}")
        if not Decimal(value).is_finite():
            self._reject("expected a finite number")
        return Decimal(value)

    def _clean_date(self, value):
        if isinstance(value, datetime) or not isinstance(value, date):
            self._reject(f"expected a date, got {type(value).__name__}")
        return value

    def _clean_list(self, value):
        if not isinstance(value, (list, tuple)):
            self._reject(f"expected a list, got {type(value).__name__}")
        element = Param(self.name, self.item, nullable=True)
        return [element.clean(v) for v in value]

    def _clean_datetime(self, value):
        if not isinstance(value, datetime):
            self._reject(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            self._reject("naive datetime: give a time zone (e.g. 2024-05-01T08:00:00+00:00)")
        return value

    def parse(self, text):
        """Read a parameter from text (CLI, query string) and clean it."""
        if not isinstance(text, str):
            return self.clean(text)
        if self.nullable and text.strip().lower() in _NULL:
            return None
        if self.type is int:
            if not _INTEGER_TEXT.fullmatch(text.strip()):
                self._reject(f"{_abridged(text)!r} is not an integer")
            # Python refuses int() of more than 4,300 digits; no 64-bit integer needs more than 19.
            if len(text.strip().lstrip("+-").lstrip("0")) > _INT64_DIGITS:
                self._reject(f"integer outside the 64-bit range [{INT64_MIN}, {INT64_MAX}]")
            return self.clean(int(text))
        if self.type is bool:
            word = text.strip().lower()
            if word not in _TRUE | _FALSE:
                self._reject(f"{text!r} is not a boolean (true/false)")
            return word in _TRUE
        if self.type is datetime:
            try:
                value = datetime.fromisoformat(text.strip())
            except ValueError:
                self._reject(f"{text!r} is not an ISO 8601 datetime")
            return self.clean(value)
        if self.type is date:
            try:
                return self.clean(date.fromisoformat(text.strip()))
            except ValueError:
                self._reject(f"{text!r} is not an ISO 8601 date")
        if self.type in (float, Decimal):
            try:
                return self.clean(self.type(text.strip()))
            except (ValueError, InvalidOperation):
                self._reject(f"{_abridged(text)!r} is not a number")
        if self.type is list:
            element = Param(self.name, self.item, nullable=True)
            return [element.parse(part) for part in text.split(",") if part.strip()] if text.strip() else []
        return self.clean(text)


# Each type's check, found by the type's name (Param.clean runs on every routed call).
_CLEANERS = {name[len("_clean_") :]: check for name, check in vars(Param).items() if name.startswith("_clean_")}


def clean_params(params_spec, given, parse=False):
    """Validate a mapping of parameters against the spec; returns them in spec order, defaults filled."""
    present = 0
    for param in params_spec:  # a loop, not sum(…): on every routed call
        present += param.name in given
    if present < len(given):  # some name is not the spec's
        known = {p.name for p in params_spec}
        unknown = next(name for name in given if name not in known)
        raise InvalidQueryParams(unknown, f"unknown parameter (expected: {', '.join(p.name for p in params_spec)})")
    cleaned = {}
    for param in params_spec:
        if param.name in given:
            value = given[param.name]
            cleaned[param.name] = param.parse(value) if parse else param.clean(value)
        elif param.required:
            raise InvalidQueryParams(param.name, "missing")
        elif param.default is not SQL_DEFAULT:
            cleaned[param.name] = param.default
    return cleaned
