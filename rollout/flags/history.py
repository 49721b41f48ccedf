"""The audit log: every flag change — who, when, what, from what to what — recorded through Django's model signals.

Only the record lives here: flags.writes saves inside a transaction, so the record commits with the change.
How a committed change reaches other processes is the flag cache's own concern (flags.cache).
Memberships are recorded from either side: flag.users.add(user) and user.queryflag_set.remove(flag)
(the flag cache bumps the flags' versions).
"""

import contextlib
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from rollout.flags.cache import flags_touched
from rollout.models import FlagChange, QueryFlag

# What an operator can change on a flag's row; users and groups are recorded as their memberships change.
TRACKED_FIELDS = tuple(
    field.name
    for field in QueryFlag._meta.concrete_fields
    # killed_by and killed_from only explain `everyone = No` (who, and the stage it keeps); the change to `everyone`
    # is what is recorded.
    # stage_since follows from the fields that changed the stage; retired_from is a copy of them.
    if field.name
    not in ("id", "name", "created", "modified", "version", "killed_by", "killed_from", "stage_since", "retired_from")
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
    if isinstance(value, (list, tuple)) and any(isinstance(item, dict) for item in value):
        return [_plain(item) for item in value]  # a plan's stages: their order is the plan
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(value)
    if isinstance(value, dict):
        return {key: _plain(ids) for key, ids in sorted(value.items())}
    return value


def values_of(flag):
    return {field: _plain(getattr(flag, field)) for field in TRACKED_FIELDS}


def record_change(flag_name, changes, version=None, reason=None, using=None):
    user, source, default_reason = _author.get()
    FlagChange.objects.using(using).create(
        flag_name=flag_name,
        user=user,
        source=source,
        changes=changes,
        version=version,
        reason=default_reason if reason is None else reason,
    )


@receiver(pre_save, sender=QueryFlag)
def _remember_before(sender, instance, using=None, **kwargs):
    if hasattr(instance, "_rollout_before"):  # flags.writes read it under the row lock
        return
    before = QueryFlag.objects.using(using).filter(pk=instance.pk).first() if instance.pk else None
    instance._rollout_before = values_of(before) if before else None


@receiver(post_save, sender=QueryFlag)
def _record_save(sender, instance, created, using=None, **kwargs):
    before = instance.__dict__.pop("_rollout_before", None) or {}
    after = values_of(instance)
    changes = {field: [before.get(field), value] for field, value in after.items() if before.get(field) != value}
    if created:
        changes = {"created": [None, instance.name], **changes}
    if changes:
        record_change(instance.name, changes, instance.version, using=using)


@receiver(post_delete, sender=QueryFlag)
def _record_delete(sender, instance, using=None, **kwargs):
    record_change(instance.name, {"deleted": [instance.name, None]}, using=using)


VERBS = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}


def _record_membership(field):
    """A membership change from either side: flag.users.add(user) or user.queryflag_set.remove(flag)."""

    def handler(sender, instance, action, reverse, pk_set, **kwargs):
        touched = flags_touched(field, instance, action, reverse, pk_set)
        members = [instance.pk] if reverse else sorted(pk_set or ())
        for name in QueryFlag.objects.filter(pk__in=touched).values_list("name", flat=True):
            record_change(name, {field: [VERBS[action], members]})

    return handler


m2m_changed.connect(
    _record_membership("users"), sender=QueryFlag.users.through, weak=False, dispatch_uid="rollout.flags.history.users"
)
m2m_changed.connect(
    _record_membership("groups"),
    sender=QueryFlag.groups.through,
    weak=False,
    dispatch_uid="rollout.flags.history.groups",
)
