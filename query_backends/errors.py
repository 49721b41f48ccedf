"""The errors a query raises, whichever backend serves it.

Both backends translate database failures into these types, so "both sides
failed with the same kind of error" can be decided by type.
"""

from contextlib import contextmanager

from django.db import DatabaseError, InterfaceError, OperationalError


class QueryError(Exception):
    """Base of every error a registered query raises on purpose."""

    kind = "query_error"


class UnknownQuery(QueryError, LookupError):
    kind = "unknown_query"

    def __init__(self, name, known):
        self.name = name
        super().__init__(f"unknown query {name!r}; known queries: {', '.join(sorted(known))}")


class InvalidQueryParams(QueryError, ValueError):
    """A parameter is missing, extra, of the wrong type or out of range. Raised before any SQL runs."""

    kind = "invalid_params"

    def __init__(self, param, problem):
        self.param = param
        self.problem = problem
        super().__init__(f"parameter {param!r}: {problem}")


class LegacyDataError(QueryError):
    """The legacy data cannot be read as the legacy function reads it (e.g. a malformed assignsitegroup)."""

    kind = "legacy_data"


class QueryTimeout(QueryError):
    kind = "timeout"


class LegacyFunctionMissing(QueryError):
    kind = "function_missing"


def infrastructure_failure(exception):
    """A failure of the infrastructure, not of either backend's logic: connection lost, shutdown, timeout.

    Such a failure says nothing about whether the twin is right; shadow mode retries it and never blames anyone.
    """
    if getattr(exception, "kind", None) in ("infrastructure", "timeout"):
        return True
    if isinstance(exception, (OperationalError, InterfaceError)):
        sqlstate = getattr(exception.__cause__, "sqlstate", None)
        if sqlstate is None:  # raised by the driver, not the server: a lost connection says so
            return isinstance(exception, InterfaceError) or "connection" in str(exception).lower()
        return sqlstate[:2] in _INFRASTRUCTURE_CLASSES or sqlstate in _INFRASTRUCTURE_STATES
    return False


# SQLSTATEs: invalid_text_representation, numeric_value_out_of_range, query_canceled, undefined_function.
_DATA_STATES = {"22P02", "22003"}
_TIMEOUT_STATE = "57014"
_UNDEFINED_FUNCTION = "42883"
# connection exceptions; serialization failure, deadlock; statement timeout, admin/crash shutdown,
# cannot connect now.
_INFRASTRUCTURE_CLASSES = {"08"}
_INFRASTRUCTURE_STATES = {"40001", "40P01", "57014", "57P01", "57P02", "57P03"}


@contextmanager
def translated_database_errors(function_name=None):
    """Turn the database failures both backends share into the project's error types."""
    try:
        yield
    except DatabaseError as exc:
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        if sqlstate in _DATA_STATES:
            raise LegacyDataError(str(exc.__cause__).splitlines()[0]) from exc
        if sqlstate == _TIMEOUT_STATE:
            raise QueryTimeout("the query ran past statement_timeout and was cancelled") from exc
        if sqlstate == _UNDEFINED_FUNCTION and function_name:
            raise LegacyFunctionMissing(
                f"the legacy function {function_name} is not installed in this database; "
                "install it with `python manage.py migrate query_backends`"
            ) from exc
        raise
