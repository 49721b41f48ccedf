"""Under /api/ every error is JSON: the net for what the views do not answer themselves."""

from http import HTTPStatus

from rollout.api.errors import json_error, method_not_allowed

API_PREFIX = "/api/"


class ApiErrorMiddleware:
    """Under /api/ every error is JSON, whatever raised it. The view answers its own errors in detail;
    this is the net for the rest (an unknown URL, a host or request refused by another middleware),
    which Django would otherwise answer with an HTML page. Put it first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        if response.status_code == 405:
            answer = method_not_allowed(request.method)
        else:
            answer = json_error(response.status_code, HTTPStatus(response.status_code).phrase.lower())
        # Whoever refused it may have logged it already (a bad Host is): the JSON is the same answer.
        answer._has_been_logged = getattr(response, "_has_been_logged", False)
        return answer
