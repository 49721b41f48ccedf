from django.core.checks import Warning, register
from django.db import DatabaseError

from rollout.cache import triggers


@register()
def triggers_installed(app_configs=None, **kwargs):
    """A declared table without its trigger: nothing reading it is cached (never stale, but never fast)."""
    try:
        missing = triggers.missing()
    except DatabaseError:  # no database yet: migrate installs them
        return []
    return [
        Warning(
            f"table {table!r} read by {', '.join(readers)} has no cache trigger: answers reading it are never cached",
            hint="run `python manage.py migrate` (it installs the triggers of the tables that exist)",
            obj=table,
            id="rollout.W002",
        )
        for table, readers in sorted(missing.items())
    ]
