"""API tokens as operators handle them: issue one for a user (the key is shown once), list, revoke.

The CLI (`rollout token …`) and the admin are thin layers over these.
"""

from django.contrib.auth import get_user_model

from rollout.models import ApiToken
from rollout.operations import OperationError

COLUMNS = ("id", "user", "created")


def _user(username):
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        raise OperationError(f"user: no user {username!r}")
    if not user.is_active:
        raise OperationError(f"user: {username!r} is inactive; a token would not authenticate")
    return user


def issue(username):
    """(token, key): the key is returned here and nowhere else; only its hash is stored."""
    key = ApiToken.issue(_user(username))
    return ApiToken.objects.get(digest=ApiToken._digest(key)), key


def listing(username=None):
    tokens = ApiToken.objects.select_related("user").order_by("-created", "-id")
    if username:
        tokens = tokens.filter(user=_user(username))
    return [
        {"id": t.pk, "user": t.user.get_username(), "created": t.created.strftime("%Y-%m-%d %H:%M")} for t in tokens
    ]


def revoke(token_id):
    """Delete the token; returns its user's name."""
    token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
    if token is None:
        raise OperationError(f"id: no token {token_id}")
    token.delete()
    return token.user.get_username()
