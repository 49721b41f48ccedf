from django.core.checks import Warning, register
from django.db import DatabaseError

from rollout.experiments import flag_name, registry


@register()
def flags_exist(app_configs=None, **kwargs):
    """Every registered query needs its flag; without one the control serves."""
    from rollout.models import QueryFlag

    try:
        existing = set(QueryFlag.objects.values_list("name", flat=True))
    except DatabaseError:  # not migrated yet: migrate creates them
        return []
    return [
        Warning(
            f"no flag {flag_name(name)} for query {name!r}: the control serves every call",
            hint="run `python manage.py migrate` (it creates missing flags) or add the flag in the admin",
            id="rollout.W001",
        )
        for name in registry().names()
        if flag_name(name) not in existing
    ]
