"""Flag states cached in-process, re-validated against a version at most every FLAG_RECHECK_SECONDS.

The version is a fingerprint of the flag table (count, top id, sum of the rows' versions, last
modification: every save bumps its row's version and modification time, and so does every membership
change, here),
kept in the default cache for half a recheck interval. A committed flag change
deletes it, so with Redis every process sees the change at its next recheck;
with local memory (or Redis down) each process recomputes the fingerprint from
the database when its own copy expires. Either way: within two seconds.

How a change reaches this process lives here, on its own model signals, from either side of a
membership (flag.users.add(user), user.queryflag_set.remove(flag)).
"""

import contextlib
import logging
import threading
import time

from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.db.models import Count, F, Max, Sum
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from rollout.conf import get_setting
from rollout.flags.state import FlagState
from rollout.outage import Outage

logger = logging.getLogger(__name__)
VERSION_KEY = "rollout:flags:version"


class FlagCache:
    def __init__(self):
        self._states = {}
        self._version = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self.outage = Outage("the flag table (keeping the last known flag states)", logger)

    def get(self, name):
        """The FlagState of a flag, or None when no such flag exists."""
        if time.monotonic() - self._checked_at >= get_setting("FLAG_RECHECK_SECONDS"):
            self._refresh()
        return self._states.get(name)

    def _refresh(self):
        with self._lock:
            try:
                version = cache.get(VERSION_KEY)
                if version is None:
                    version = self._fingerprint()
                    cache.set(VERSION_KEY, version, timeout=get_setting("FLAG_RECHECK_SECONDS") / 2)
                if version != self._version:
                    self._states = self._load()
                    self._version = version
            except DatabaseError as exc:
                # Serve the states we have; the next call tries again.
                self.outage.failed(exc)
                return
            self.outage.succeeded()
            self._checked_at = time.monotonic()

    @staticmethod
    def _fingerprint():
        from rollout.models import QueryFlag

        stats = QueryFlag.objects.aggregate(
            count=Count("id"), versions=Sum("version"), top=Max("id"), modified=Max("modified")
        )
        modified = stats["modified"].isoformat() if stats["modified"] else ""
        return f"{stats['count']}:{stats['top']}:{stats['versions']}:{modified}"

    @staticmethod
    def _load():
        from rollout.models import QueryFlag

        return {flag.name: FlagState.from_flag(flag) for flag in QueryFlag.objects.prefetch_related("users", "groups")}

    @contextlib.contextmanager
    def pinned(self, state):
        """Serve this state for its flag, with no refresh, inside the block (benchmarks)."""
        with self._lock:
            previous, self._states = self._states, {**self._states, state.name: state}
            checked, self._checked_at = self._checked_at, float("inf")
        try:
            yield
        finally:
            self._states, self._checked_at = previous, checked

    def invalidate(self):
        """Called on commit of a flag change: this process at once, the others at their next recheck."""
        cache.delete(VERSION_KEY)
        self._checked_at = float("-inf")


flags = FlagCache()


def _flag_saved_or_deleted(sender, **kwargs):
    transaction.on_commit(flags.invalidate)


MEMBERSHIP_CHANGES = ("post_add", "post_remove", "post_clear")


def flags_touched(field, instance, action, reverse, pk_set):
    """The pks of the flags a membership change touches, from the flag's side (instance: a flag) or the
    member's (instance: a user or group, pk_set: flags); empty for a signal that changes nothing."""
    from rollout.models import QueryFlag

    if action == "pre_clear" and reverse:  # post_clear from the member's side does not say which flags
        instance._rollout_cleared_flags = set(
            QueryFlag.objects.filter(**{field: instance}).values_list("pk", flat=True)
        )
    if action not in MEMBERSHIP_CHANGES:
        return set()
    if not reverse:
        return {instance.pk}
    return set(pk_set) if pk_set is not None else getattr(instance, "_rollout_cleared_flags", set())


def _members_changed(field):
    def handler(sender, instance, action, reverse, pk_set, **kwargs):
        from rollout.models import QueryFlag

        touched = flags_touched(field, instance, action, reverse, pk_set)
        if touched:
            # The row is left alone by a membership change; bump its version, which the fingerprint sums.
            QueryFlag.objects.filter(pk__in=touched).update(version=F("version") + 1, modified=timezone.now())
            transaction.on_commit(flags.invalidate)

    return handler


def watch_flag_changes():
    """Invalidate the flag cache on commit of any change to a flag: its row, its users, its groups."""
    from rollout.models import QueryFlag

    post_save.connect(_flag_saved_or_deleted, sender=QueryFlag, dispatch_uid="rollout.flags.cache.save")
    post_delete.connect(_flag_saved_or_deleted, sender=QueryFlag, dispatch_uid="rollout.flags.cache.delete")
    for field in ("users", "groups"):
        through = getattr(QueryFlag, field).through
        m2m_changed.connect(
            _members_changed(field), sender=through, weak=False, dispatch_uid=f"rollout.flags.cache.{field}"
        )
