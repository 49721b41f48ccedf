from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_flags(sender, using="default", **kwargs):
    from rollout.flags.writes import ensure_flags

    ensure_flags(using=using)  # on the database just migrated


class RolloutConfig(AppConfig):
    name = "rollout"
    verbose_name = "Rollout"

    def ready(self):
        from rollout import checks  # noqa: F401 — registers the system check
        from rollout.api.auth import watch_caller_changes
        from rollout.cache import checks as cache_checks  # noqa: F401 — registers the trigger check
        from rollout.cache.triggers import install
        from rollout.flags import history  # noqa: F401 — registers the audit log's signals
        from rollout.flags.cache import watch_flag_changes
        from rollout.registry import autodiscover
        from rollout.shadow.queue import install_shutdown_hooks

        autodiscover()
        watch_flag_changes()
        watch_caller_changes()
        post_migrate.connect(_create_flags, sender=self)
        post_migrate.connect(install, sender=self, dispatch_uid="rollout.cache.triggers")
        install_shutdown_hooks()
