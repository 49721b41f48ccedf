from django.core.checks import Error, Warning, register
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


@register()
def adopted_functions(app_configs=None, **kwargs):
    """Each rollout.Query: its function is there, its twin can take the function's arguments, and a function
    that may write is said to be refused shadow, rescue and caching."""
    from rollout.postgres.catalog import FunctionNotFound
    from rollout.query import Query

    found = []
    for name in registry().names():
        query = registry().get(name)
        if not isinstance(query, Query):
            continue
        try:
            problems = query.problems()
            writes = query.writes
        except FunctionNotFound as exc:
            found.append(
                Warning(
                    f"query {query.name!r}: {exc}; the control cannot serve",
                    hint="create the function (in a migration, so that test databases have it too)",
                    obj=query.name,
                    id="rollout.W003",
                )
            )
            continue
        except DatabaseError:  # no database to read pg_proc from: the check says nothing
            return found
        found += [Error(f"query {query.name!r}: {problem}", obj=query.name, id="rollout.E001") for problem in problems]
        if writes:
            found.append(
                Warning(
                    f"query {query.name!r}: shadow comparisons, rescue and caching are refused: {writes}",
                    obj=query.name,
                    id="rollout.W004",
                )
            )
    return found
