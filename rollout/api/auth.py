"""Who is asking: a token or a logged-in user, with their actor and whether they may ask about any client.

Resolving a caller costs queries (the token and its user, the Django groups,
the permissions, the actor resolver), so a resolved caller is kept in this
process for at most FLAG_RECHECK_SECONDS — the bound a flag change already
has. A change to a token, a user, a group or a permission clears this
process's callers on commit, at once; other processes see it when their entry
expires. Only tokens that resolved are kept: an unknown key costs its lookup
every time, so guessing keys cannot fill the cache, and a new token works at once.
"""

import threading
import time
from dataclasses import dataclass

from cachetools import LRUCache
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from rollout.conf import get_setting
from rollout.models import ApiToken
from rollout.routing.actors import Actor, actor_for_user

ANY_TENANT = "rollout.query_any_tenant"
TOKEN_PREFIX = "Token "


@dataclass(frozen=True)
class Caller:
    user_id: int
    actor: Actor
    any_tenant: bool  # may ask about any client, and sees every part of every answer


def _resolve(user):
    return Caller(user_id=user.pk, actor=actor_for_user(user), any_tenant=user.has_perm(ANY_TENANT))


class Callers:
    def __init__(self, size=10_000):
        self._entries = LRUCache(maxsize=size)  # key -> (expires at, Caller)
        self._lock = threading.Lock()

    def for_request(self, request):
        """The Caller behind a request, or None when it is not authenticated."""
        header = request.headers.get("Authorization", "")
        if header.startswith(TOKEN_PREFIX):
            digest = ApiToken._digest(header.removeprefix(TOKEN_PREFIX).strip())
            return self._get(("token", digest), lambda: ApiToken.user_for_digest(digest))
        user = request.user
        return self._get(("user", user.pk), lambda: user) if user.is_authenticated else None

    def _get(self, key, user_of):
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        user = user_of()
        if user is None:
            return None
        caller = _resolve(user)
        with self._lock:
            self._entries[key] = (now + get_setting("FLAG_RECHECK_SECONDS"), caller)
        return caller

    def clear(self):
        with self._lock:
            self._entries.clear()


callers = Callers()


def _changed(sender, **kwargs):
    transaction.on_commit(callers.clear)


def watch_caller_changes():
    """Forget this process's callers on commit of any change that can change who a caller is."""
    user_model = get_user_model()
    for model in (ApiToken, user_model, Group, Permission):
        post_save.connect(_changed, sender=model, dispatch_uid=f"rollout.api.callers.save.{model._meta.label}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"rollout.api.callers.delete.{model._meta.label}")
    for through in (user_model.groups.through, user_model.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(_changed, sender=through, dispatch_uid=f"rollout.api.callers.m2m.{through._meta.label}")
