"""GET /api/queries/<name>?param=value…: a query served through the router for the caller.

Session or token auth (Authorization: Token <key>). The actor is the user's
legacy person; a caller may only ask about their own client unless they hold
rollout.query_any_tenant. Every failure is JSON with a status that says what
went wrong — never a 500 for bad input.
"""

import logging

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from rollout.actors import actor_for_user
from rollout.models import ApiToken
from rollout.router import dispatch, last_decision

logger = logging.getLogger(__name__)
BACKEND_HEADER = "X-Rollout-Backend"


def _error(status, message, **extra):
    return JsonResponse({"error": message, **extra}, status=status)


def _user(request):
    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        return ApiToken.user_for(header.removeprefix("Token ").strip())
    return request.user if request.user.is_authenticated else None


@require_GET
def query(request, name):
    from rollout.experiments import get_experiment

    user = _user(request)
    if user is None:
        return _error(401, "authentication required: log in, or send 'Authorization: Token <key>'")
    try:
        experiment = get_experiment(name)
    except LookupError:
        return _error(404, f"unknown query {name!r}")
    given = {key: request.GET.getlist(key)[-1] for key in request.GET}
    try:
        params = experiment.clean(given, parse=True)
    except ValueError as exc:
        return _error(400, str(exc), parameter=getattr(exc, "param", None))
    actor = actor_for_user(user)
    if not user.has_perm("rollout.query_any_tenant") and not experiment.allowed_for(actor.client_id, params):
        return _error(403, "these parameters point outside your client")
    try:
        answer = dispatch(name, actor=actor, **params)
    except Exception as exc:
        kind = getattr(exc, "kind", None)
        status = {"timeout": 504, "legacy_data": 422, "function_missing": 503}.get(kind, 500)
        if status == 500:
            logger.exception("query %s failed", name)
        return _error(status, str(exc) if kind else "internal error", kind=kind)
    decision = last_decision()
    response = JsonResponse(
        {"query": name, "backend": decision.backend, "result": answer}, encoder=DjangoJSONEncoder, safe=False
    )
    response[BACKEND_HEADER] = decision.backend
    return response
