"""request.actor for the router: the actor behind the request's user, resolved on first use."""

from django.utils.functional import SimpleLazyObject

from rollout.routing.actors import actor_for_user


class ActorMiddleware:
    """Attaches request.actor, resolved on first use."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.actor = SimpleLazyObject(lambda: actor_for_user(getattr(request, "user", None)))
        return self.get_response(request)
