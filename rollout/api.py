"""GET /api/queries/<name>?param=value…: a query served through the router for the caller.

Session or token auth (Authorization: Token <key>). The actor is the user's
legacy person; a caller may only ask about their own client unless they hold
rollout.query_any_tenant, and never gets a row of another client back (such
rows are filtered out and counted). Every failure, whatever raised it, is JSON
with a status that says what went wrong and, where there is one, the parameter
or the limit — never a 500 for bad input. A list longer than STREAM_CHUNK_ROWS
is streamed a chunk of rows at a time, so a large answer is never also held
as one JSON text.
"""

import json
import logging

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation, TooManyFieldsSent
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from rollout.actors import actor_for_user
from rollout.metrics import metrics
from rollout.models import ApiToken
from rollout.router import dispatch, last_decision

logger = logging.getLogger(__name__)
BACKEND_HEADER = "X-Rollout-Backend"
ALLOWED_METHODS = ("GET",)
STREAM_CHUNK_ROWS = 500
# The request limit a GET can meet (the API never reads a body: other methods are a 405 first).
FIELDS_LIMIT = "DATA_UPLOAD_MAX_NUMBER_FIELDS"
# What a query error's kind means for the caller.
KIND_STATUS = {"timeout": 504, "legacy_data": 422, "function_missing": 503, "infrastructure": 503}


def json_error(status, message, **extra):
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 503:
        response["Retry-After"] = "1"
    return response


def error_response(exc, name=None):
    """The JSON answer to anything raised while serving an API request."""
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return json_error(400, f"more than {limit} query parameters", limit={"setting": FIELDS_LIMIT, "value": limit})
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        return json_error(400, f"bad request: {exc}")
    kind = getattr(exc, "kind", None)
    if kind in KIND_STATUS:
        return json_error(KIND_STATUS[kind], str(exc), kind=kind)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # Outside a query (the token lookup, the actor): the connection failed, not the caller.
        logger.warning("API request for %s: database unavailable (%s)", name, type(exc).__name__)
        return json_error(503, "the database is unavailable; try again", kind="infrastructure")
    if isinstance(exc, ValueError) and getattr(exc, "param", None):
        return json_error(400, str(exc), parameter=exc.param)
    logger.error("API request for %s failed", name, exc_info=exc)
    return json_error(500, "internal error", kind=kind)


def method_not_allowed(method):
    response = json_error(
        405, f"method {method} is not allowed: the API only answers {', '.join(ALLOWED_METHODS)}", parameter="method"
    )
    response["Allow"] = ", ".join(ALLOWED_METHODS)
    return response


def _user(request):
    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        return ApiToken.user_for(header.removeprefix("Token ").strip())
    return request.user if request.user.is_authenticated else None


# Only GET is served and GET changes nothing, so there is nothing for CSRF to protect; without this a
# POST with a token met Django's CSRF page instead of the JSON 405.
@csrf_exempt
def query(request, name):
    if request.method not in ALLOWED_METHODS:
        return method_not_allowed(request.method)
    try:
        try:
            return _serve(request, name)
        except (OperationalError, InterfaceError):
            if not _connection_lost():
                raise
            # Lost at the token, the actor or a permission, after the pool's check handed the connection
            # out: serving reads only, so serve once more on a fresh connection (the query itself was
            # retried by the registry already, if it was the one that met the loss).
            connection.close()
            return _serve(request, name)
    except Exception as exc:  # noqa: BLE001 — every failure becomes a JSON answer; error_response logs the unexpected
        return error_response(exc, name)


def _connection_lost():
    """The request's connection is gone, and no transaction of the caller's went with it."""
    return not connection.in_atomic_block and not (connection.connection is not None and connection.is_usable())


def _serve(request, name):
    from rollout.experiments import get_experiment

    user = _user(request)
    if user is None:
        return json_error(401, "authentication required: log in, or send 'Authorization: Token <key>'")
    try:
        experiment = get_experiment(name)
    except LookupError:
        return json_error(404, f"unknown query {name!r}")
    given = {key: request.GET.getlist(key)[-1] for key in request.GET}
    params = experiment.clean(given, parse=True)
    actor = actor_for_user(user)
    any_tenant = user.has_perm("rollout.query_any_tenant")
    if not any_tenant and not experiment.allowed_for(actor.client_id, params):
        return json_error(403, "these parameters point outside your client")
    answer = dispatch(name, actor=actor, **params)
    backend = last_decision().backend
    if not any_tenant:
        answer = _own_rows(experiment, name, backend, actor.client_id, answer)
    response = _respond({"query": name, "backend": backend}, answer)
    response[BACKEND_HEADER] = backend
    return response


def _own_rows(experiment, name, backend, client_id, answer):
    """The answer without the rows of other clients; each filtered call is counted and logged (ids only)."""
    foreign = experiment.foreign_rows(client_id, answer)
    if not foreign:
        return answer
    metrics.increment(name, backend, "tenant_filtered", len(foreign))
    logger.warning("query %s: %d row(s) of another client filtered out of the answer", name, len(foreign))
    dropped = set(foreign)
    return [row for i, row in enumerate(answer) if i not in dropped]


def _respond(head, answer):
    if not isinstance(answer, list) or len(answer) <= STREAM_CHUNK_ROWS:
        return JsonResponse({**head, "result": answer}, encoder=DjangoJSONEncoder, safe=False)
    return StreamingHttpResponse(_streamed(head, answer), content_type="application/json")


def _streamed(head, rows):
    """The JSON of {**head, "result": rows}, a few hundred rows at a time."""
    encode = DjangoJSONEncoder().encode
    yield json.dumps(head, cls=DjangoJSONEncoder)[:-1] + ', "result": ['
    for start in range(0, len(rows), STREAM_CHUNK_ROWS):
        yield ("," if start else "") + ",".join(encode(row) for row in rows[start : start + STREAM_CHUNK_ROWS])
    yield "]}"
