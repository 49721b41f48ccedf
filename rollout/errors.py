"""The errors a registered query raises whatever its domain, and how a database failure is told apart from a
failure of either side's logic. A host's own errors subclass QueryError and carry their own `kind`."""

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


# SQLSTATEs. admin_shutdown, crash_shutdown: the server ends the session. cannot_connect_now,
# serialization_failure, deadlock_detected: the session lives on, the statement failed. query_canceled.
SESSION_ENDED_STATES = {"57P01", "57P02"}
STATEMENT_FAILED_STATES = {"57P03", "40001", "40P01"}
TIMEOUT_STATE = "57014"
CONNECTION_CLASS = "08"
_NO_SQLSTATE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def driver_error(exc):
    """Django wraps the driver's error and keeps it as __cause__; an unwrapped one is its own cause."""
    return exc if isinstance(exc, psycopg.Error) else exc.__cause__


def connection_lost(exc, sqlstate):
    if sqlstate in SESSION_ENDED_STATES or (sqlstate or "").startswith(CONNECTION_CLASS):
        return True
    # A lost connection carries no SQLSTATE: psycopg raises OperationalError/InterfaceError
    # ("the connection is closed", "server closed the connection unexpectedly", a pool timeout).
    return sqlstate is None and isinstance(exc, _NO_SQLSTATE_ERRORS)


def unavailable(exc, sqlstate):
    """The database, not the query, failed."""
    return connection_lost(exc, sqlstate) or sqlstate in STATEMENT_FAILED_STATES


def infrastructure_failure(exception):
    """A failure of the infrastructure, not of either side's logic: connection lost, shutdown, timeout.

    Such a failure says nothing about whether the candidate is right; shadow mode retries it and never blames anyone.
    """
    if getattr(exception, "kind", None) in ("infrastructure", "timeout"):
        return True
    if isinstance(exception, (Error, psycopg.Error)):
        sqlstate = getattr(driver_error(exception), "sqlstate", None)
        return unavailable(exception, sqlstate) or sqlstate == TIMEOUT_STATE
    return False
