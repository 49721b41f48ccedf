"""The errors a query raises, whichever backend serves it.

Both backends translate database failures into these types, so "both sides
failed with the same kind of error" can be decided by type.
"""

import re

import psycopg
from django.db import Error

# rollout's generic errors are this domain's too: its queries raise them, its callers catch them from here.
from rollout.errors import (  # noqa: F401
    TIMEOUT_STATE,
    InvalidQueryParams,
    QueryError,
    UnknownQuery,
    connection_lost,
    driver_error,
    infrastructure_failure,
    unavailable,
)


class LegacyDataError(QueryError):
    """The legacy data cannot be read as the legacy function reads it (e.g. a malformed assignsitegroup)."""

    kind = "legacy_data"


class QueryTimeout(QueryError):
    kind = "timeout"


class LegacyFunctionMissing(QueryError):
    kind = "function_missing"


class DatabaseUnavailable(QueryError):
    """The database could not answer this time: connection lost, server shutting down, serialization
    failure or deadlock. Nothing about the query or its data is wrong; the same call may succeed later."""

    kind = "infrastructure"

    def __init__(self, message, connection_lost=False):
        self.connection_lost = connection_lost  # the session is gone: nothing ran to completion on it
        super().__init__(message)


# What each kind of error means for an API caller (rollout asks through the experiment's status_for).
STATUS = {
    "invalid_params": 400,
    "unknown_query": 404,
    "legacy_data": 422,
    "timeout": 504,
    "function_missing": 503,
    "infrastructure": 503,
}


def status_for(exception):
    """(HTTP status, kind) of an error a query raised, or None when it is not one of the project's kinds."""
    kind = getattr(exception, "kind", None)
    return (STATUS[kind], kind) if isinstance(exception, QueryError) and kind in STATUS else None


# SQLSTATEs: invalid_text_representation, numeric_value_out_of_range, undefined_function.
_DATA_STATES = {"22P02", "22003"}
_UNDEFINED_FUNCTION = "42883"
_MISSING_FUNCTION = re.compile(r"function ([\w.]+)\(")


class translated_database_errors:
    """Turn the database failures both backends share into the project's error types.

    A class, not a @contextmanager: it wraps every call of either backend, and a generator-based
    context manager costs a sub-millisecond twin a measurable share of its time.
    """

    __slots__ = ("function_name",)

    def __init__(self, function_name=None):
        self.function_name = function_name

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None or not isinstance(exc, (Error, psycopg.Error)):
            return False
        cause = driver_error(exc)
        sqlstate = getattr(cause, "sqlstate", None)
        if sqlstate in _DATA_STATES:
            raise LegacyDataError(str(cause).splitlines()[0]) from exc
        if sqlstate == TIMEOUT_STATE:
            raise QueryTimeout("the query ran past statement_timeout and was cancelled") from exc
        if sqlstate == _UNDEFINED_FUNCTION and self.function_name:
            # The function called may be there and call a missing one (fn_getassetdetails calls
            # fn_getassetvsquestionset): name the one PostgreSQL could not find.
            named = _MISSING_FUNCTION.search(getattr(cause.diag, "message_primary", None) or "")
            raise LegacyFunctionMissing(
                f"the legacy function {named.group(1) if named else self.function_name} is not installed in "
                "this database; install it with `python manage.py install_legacy_functions`"
            ) from exc
        if unavailable(exc, sqlstate):
            reason = _first_line(cause or exc)
            lost = connection_lost(exc, sqlstate)
            raise DatabaseUnavailable(f"the database is unavailable: {reason}", connection_lost=lost) from exc
        return False


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
