"""The errors a query raises, whichever backend serves it.

Both backends translate database failures into these types, so "both sides
failed with the same kind of error" can be decided by type.
"""

import re
from contextlib import contextmanager

import psycopg
from django.db import Error, InterfaceError, OperationalError


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


def infrastructure_failure(exception):
    """A failure of the infrastructure, not of either backend's logic: connection lost, shutdown, timeout.

    Such a failure says nothing about whether the twin is right; shadow mode retries it and never blames anyone.
    """
    if getattr(exception, "kind", None) in ("infrastructure", "timeout"):
        return True
    if isinstance(exception, (Error, psycopg.Error)):  # one that did not pass through translated_database_errors
        sqlstate = getattr(_driver_error(exception), "sqlstate", None)
        return _unavailable(exception, sqlstate) or sqlstate == _TIMEOUT_STATE
    return False


# SQLSTATEs: invalid_text_representation, numeric_value_out_of_range, query_canceled, undefined_function.
_DATA_STATES = {"22P02", "22003"}
_TIMEOUT_STATE = "57014"
_UNDEFINED_FUNCTION = "42883"
_MISSING_FUNCTION = re.compile(r"function ([\w.]+)\(")
# admin_shutdown, crash_shutdown: the server ends the session. cannot_connect_now, serialization_failure,
# deadlock_detected: the session lives on, the statement failed.
_SESSION_ENDED_STATES = {"57P01", "57P02"}
_STATEMENT_FAILED_STATES = {"57P03", "40001", "40P01"}
_CONNECTION_CLASS = "08"
_NO_SQLSTATE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def _connection_lost(exc, sqlstate):
    if sqlstate in _SESSION_ENDED_STATES or (sqlstate or "").startswith(_CONNECTION_CLASS):
        return True
    # A lost connection carries no SQLSTATE: psycopg raises OperationalError/InterfaceError
    # ("the connection is closed", "server closed the connection unexpectedly", a pool timeout).
    return sqlstate is None and isinstance(exc, _NO_SQLSTATE_ERRORS)


def _unavailable(exc, sqlstate):
    """The database, not the query, failed: DatabaseUnavailable."""
    return _connection_lost(exc, sqlstate) or sqlstate in _STATEMENT_FAILED_STATES


@contextmanager
def translated_database_errors(function_name=None):
    """Turn the database failures both backends share into the project's error types."""
    try:
        yield
    except (Error, psycopg.Error) as exc:
        driver_error = _driver_error(exc)
        sqlstate = getattr(driver_error, "sqlstate", None)
        if sqlstate in _DATA_STATES:
            raise LegacyDataError(str(driver_error).splitlines()[0]) from exc
        if sqlstate == _TIMEOUT_STATE:
            raise QueryTimeout("the query ran past statement_timeout and was cancelled") from exc
        if sqlstate == _UNDEFINED_FUNCTION and function_name:
            # The function called may be there and call a missing one (fn_getassetdetails calls
            # fn_getassetvsquestionset): name the one PostgreSQL could not find.
            named = _MISSING_FUNCTION.search(getattr(driver_error.diag, "message_primary", None) or "")
            raise LegacyFunctionMissing(
                f"the legacy function {named.group(1) if named else function_name} is not installed in this "
                "database; install it with `python manage.py install_legacy_functions`"
            ) from exc
        if _unavailable(exc, sqlstate):
            reason = _first_line(driver_error or exc)
            lost = _connection_lost(exc, sqlstate)
            raise DatabaseUnavailable(f"the database is unavailable: {reason}", connection_lost=lost) from exc
        raise


def _driver_error(exc):
    """Django wraps the driver's error and keeps it as __cause__; an unwrapped one is its own cause."""
    return exc if isinstance(exc, psycopg.Error) else exc.__cause__


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
