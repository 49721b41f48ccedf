"""Every failure under /api/ as JSON, with a status that says what went wrong.

What an experiment's own errors mean is asked of it (`status_for`): rollout
knows nothing of any domain's error kinds. An error it does not classify is a
503 when the experiment calls it an infrastructure failure, else a logged 500.
"""

import logging
from collections import defaultdict

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from rollout.outage import Burst

logger = logging.getLogger("rollout.api")
ALLOWED_METHODS = ("GET",)
# The request limit a GET can meet (the API never reads a body: other methods are a 405 first).
FIELDS_LIMIT = "DATA_UPLOAD_MAX_NUMBER_FIELDS"
UNAVAILABLE = 503


def json_error(status, message, **extra):
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == UNAVAILABLE:
        response["Retry-After"] = "1"
    return response


def method_not_allowed(method):
    response = json_error(
        405, f"method {method} is not allowed: the API only answers {', '.join(ALLOWED_METHODS)}", parameter="method"
    )
    response["Allow"] = ", ".join(ALLOWED_METHODS)
    return response


def classify(experiment, exc):
    """(status, kind) for an error raised while serving, or None when nothing says what it means."""
    if experiment is None:  # failed before the experiment was found: nothing of it to ask
        return None
    classified = experiment.status_for(exc)
    if classified is not None:
        return classified
    if experiment.infrastructure_failure(exc):
        return UNAVAILABLE, getattr(exc, "kind", None) or "infrastructure"
    return None


def error_response(exc, name=None, experiment=None):
    """The JSON answer to anything raised while serving an API request."""
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return json_error(400, f"more than {limit} query parameters", limit={"setting": FIELDS_LIMIT, "value": limit})
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        return json_error(400, f"bad request: {exc}")
    classified = classify(experiment, exc)
    param = getattr(exc, "param", None)
    if classified is not None:
        status, kind = classified
        response = json_error(status, str(exc), kind=kind, **({"parameter": param} if param else {}))
        return _expected(response, name, kind, exc) if status >= 500 else response
    if isinstance(exc, (OperationalError, InterfaceError)):
        # Outside a query (the token lookup, the actor): the connection failed, not the caller.
        response = json_error(UNAVAILABLE, "the database is unavailable; try again", kind="infrastructure")
        return _expected(response, name, "infrastructure", exc)
    if isinstance(exc, ValueError) and param:
        return json_error(400, str(exc), parameter=param)
    logger.error("API request for %s failed", name, exc_info=exc)
    return json_error(500, "internal error", kind=getattr(exc, "kind", None))


_bursts = defaultdict(Burst)


def _expected(response, name, kind, exc):
    """A server-side failure the experiment named (a function missing, the database gone, a timeout) is an
    outage, not a bug: one warning per burst of that kind, no traceback, instead of Django's ERROR line per
    request."""
    burst = _bursts[kind]
    if burst.first():
        logger.warning(
            "query %s: %d %s (%s); more of these, of any query, are not logged until %.0f s pass without one",
            *(name, response.status_code, kind, exc, burst.quiet),
        )
    response._has_been_logged = True
    return response
