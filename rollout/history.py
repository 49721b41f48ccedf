"""The audit log: every flag change — who, when, what, from what to what — recorded through Django's model signals.

Only the record lives here. How a committed change reaches other processes is
the flag cache's own concern (flag_cache.watch_flag_changes).
"""

import contextlib
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from rollout.models import FlagChange, QueryFlag

# What an operator can change on a flag's row; users and groups are recorded as their memberships change.
TRACKED_FIELDS = tuple(
    field.name
    for field in QueryFlag._meta.concrete_fields
    if field.name not in ("id", "name", "created", "modified", *QueryFlag.NOT_READ)
)

_author = ContextVar("rollout_change_author", default=(None, "code", ""))


@contextlib.contextmanager
def changed_by(user=None, source="code", reason=""):
    """Attribute the flag changes made inside the block to a user and a source (admin, cli, guard…)."""
    token = _author.set((user if getattr(user, "pk", None) else None, source, reason))
    try:
        yield
    finally:
        _author.reset(token)


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(value)
    return value


def values_of(flag):
    return {field: _plain(getattr(flag, field)) for field in TRACKED_FIELDS}


def record_change(flag_name, changes, reason=None):
    user, source, default_reason = _author.get()
    FlagChange.objects.create(
        flag_name=flag_name,
        user=user,
        source=source,
        changes=changes,
        reason=default_reason if reason is None else reason,
    )


@receiver(pre_save, sender=QueryFlag)
def _remember_before(sender, instance, **kwargs):
    before = QueryFlag.objects.filter(pk=instance.pk).first() if instance.pk else None
    instance._rollout_before = values_of(before) if before else None


@receiver(post_save, sender=QueryFlag)
def _record_save(sender, instance, created, **kwargs):
    before = getattr(instance, "_rollout_before", None) or {}
    after = values_of(instance)
    changes = {field: [before.get(field), value] for field, value in after.items() if before.get(field) != value}
    if created:
        changes = {"created": [None, instance.name], **changes}
    if changes:
        record_change(instance.name, changes)


@receiver(post_delete, sender=QueryFlag)
def _record_delete(sender, instance, **kwargs):
    record_change(instance.name, {"deleted": [instance.name, None]})


def _record_membership(field):
    def handler(sender, instance, action, pk_set, **kwargs):
        if action not in ("post_add", "post_remove", "post_clear") or not isinstance(instance, QueryFlag):
            return
        verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
        record_change(instance.name, {field: [verb, sorted(pk_set or ())]})

    return handler


m2m_changed.connect(
    _record_membership("users"), sender=QueryFlag.users.through, weak=False, dispatch_uid="rollout.history.users"
)
m2m_changed.connect(
    _record_membership("groups"), sender=QueryFlag.groups.through, weak=False, dispatch_uid="rollout.history.groups"
)
