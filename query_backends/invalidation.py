"""Every committed write to a legacy table through Django bumps that table's cache generation.

save/delete send model signals; queryset update/delete and bulk_create/bulk_update
do not, so the legacy models' manager uses InvalidatingQuerySet. The bump runs
on commit: a rolled-back write invalidates nothing, and no reader can cache the
old answer under the new generation.
"""

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

from query_backends.caching import bump


def bump_on_commit(model):
    table = model._meta.db_table
    transaction.on_commit(lambda: bump([table]))


class InvalidatingQuerySet(models.QuerySet):
    def update(self, **kwargs):
        bump_on_commit(self.model)
        return super().update(**kwargs)

    def delete(self):
        bump_on_commit(self.model)
        return super().delete()

    def bulk_create(self, objs, *args, **kwargs):
        bump_on_commit(self.model)
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        bump_on_commit(self.model)
        return super().bulk_update(objs, fields, *args, **kwargs)


LegacyManager = models.Manager.from_queryset(InvalidatingQuerySet)


def _on_write(sender, **kwargs):
    if sender._meta.app_label == "query_backends":
        bump_on_commit(sender)


post_save.connect(_on_write, dispatch_uid="query_backends.invalidate.save")
post_delete.connect(_on_write, dispatch_uid="query_backends.invalidate.delete")
