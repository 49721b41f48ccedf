"""GET /api/queries/<name>?param=value…: a query served through the router for the caller.

Session or token auth (Authorization: Token <key>). The actor is what the
host's resolver finds for the user; a caller may only ask about their own
tenant (the cohort the resolver names `tenant`, labelled as it declares)
unless they hold rollout.query_any_tenant, and never gets a part of another
tenant's data back: whatever the experiment's `redact` says belongs to another tenant — a whole
row, an id in a column, an id or a name packed into text — is taken out and
counted. Every failure, whatever raised it, is JSON with a status that says
what went wrong and, where there is one, the parameter or the limit — never a
500 for bad input. A list longer than STREAM_CHUNK_ROWS is streamed a chunk of
rows at a time, so a large answer is never also held as one JSON text.
"""

import json
import logging

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from rollout import reports
from rollout.api.auth import callers
from rollout.api.errors import ALLOWED_METHODS, error_response, json_error, method_not_allowed
from rollout.errors import InvalidQueryParams
from rollout.experiments import get_experiment
from rollout.metrics.rollups import metrics
from rollout.routing.actors import tenant_label, tenant_of
from rollout.routing.router import dispatch, last_decision

logger = logging.getLogger("rollout.api")
BACKEND_HEADER = "X-Rollout-Backend"
VIEW_FLAGS = "rollout.view_queryflag"
STREAM_CHUNK_ROWS = 500


# Only GET is served and GET changes nothing, so there is nothing for CSRF to protect; without this a
# POST with a token met Django's CSRF page instead of the JSON 405.
@csrf_exempt
def query(request, name):
    if request.method not in ALLOWED_METHODS:
        return method_not_allowed(request.method)
    served = {}  # what _serve learnt before it failed: the experiment classifies its own errors
    try:
        try:
            return _serve(request, name, served)
        except (OperationalError, InterfaceError):
            if not _connection_lost():
                raise
            # Lost at the token, the actor or a permission, after the pool's check handed the connection
            # out: serving reads only, so serve once more on a fresh connection (the query itself was
            # retried by the registry already, if it was the one that met the loss).
            connection.close()
            return _serve(request, name, served)
    except Exception as exc:  # noqa: BLE001 — every failure becomes a JSON answer; error_response logs the unexpected
        return error_response(exc, name, served.get("experiment"))


@csrf_exempt
def status(request):
    """GET /api/rollout/status: each query's lifecycle stage, time in stage, what serves whom and its numbers, as
    `rollout status --json` says it. For a caller who may view query flags (rollout.view_queryflag)."""
    if request.method not in ALLOWED_METHODS:
        return method_not_allowed(request.method)
    caller = callers.for_request(request)
    if caller is None:
        return json_error(401, "authentication required: log in, or send 'Authorization: Token <key>'")
    if not get_user_model().objects.get(pk=caller.user_id).has_perm(VIEW_FLAGS):
        return json_error(403, f"the rollout's status needs the permission {VIEW_FLAGS}")
    return JsonResponse({"queries": reports.status()}, encoder=DjangoJSONEncoder)


def _one_value_each(query_string):
    """Each parameter once: `?ids=1&ids=2` is refused, not served for ids 2 alone (a list is one value, "1,2")."""
    for key, values in query_string.lists():
        if len(values) > 1:
            raise InvalidQueryParams(key, f"given {len(values)} times; give it once (a list is one value: 1,2,3)")
    return query_string.dict()


def _connection_lost():
    """The request's connection is gone, and no transaction of the caller's went with it."""
    return not connection.in_atomic_block and not (connection.connection is not None and connection.is_usable())


def _serve(request, name, served):
    caller = callers.for_request(request)
    if caller is None:
        return json_error(401, "authentication required: log in, or send 'Authorization: Token <key>'")
    try:
        experiment = served["experiment"] = get_experiment(name)
    except LookupError:
        return json_error(404, f"unknown query {name!r}")
    given = _one_value_each(request.GET)
    params = experiment.clean(given, parse=True)
    client_id = tenant_of(caller.actor)
    if not caller.any_tenant and not experiment.allowed_for(client_id, params):
        return json_error(403, f"these parameters point outside your {tenant_label()}")
    answer = dispatch(name, actor=caller.actor, **params)
    backend = last_decision().backend
    if not caller.any_tenant:
        answer = _own_parts(experiment, name, backend, client_id, params, answer)
    response = _respond({"query": name, "backend": backend}, answer)
    response[BACKEND_HEADER] = backend
    return response


def _own_parts(experiment, name, backend, client_id, params, answer):
    """The answer without another client's parts; each removal is counted and logged (counts only)."""
    answer, removed = experiment.redact(client_id, params, answer)
    if removed:
        metrics.increment(name, backend, "tenant_filtered", removed)
        logger.warning("query %s: %d part(s) of another client removed from the answer", name, removed)
    return answer


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
