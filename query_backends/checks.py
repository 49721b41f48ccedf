import django
from django.core.checks import Error, Warning, register
from django.db import DatabaseError, connection
from django.db.migrations.recorder import MigrationRecorder

from query_backends.functions import installation_problems
from query_backends.twins.compiled import SUPPORTED_DJANGO

INSTALLING_MIGRATION = ("query_backends", "0003_legacy_functions")


@register()
def legacy_functions_installed(app_configs=None, **kwargs):
    """The nine legacy functions as `rollout functions --check` sees them: the control needs every one, but for
    a retired query's (dropped on purpose). Only once the migration that installs them has run (before, `migrate`
    installs them); a warning, not an error, so that it never stops `migrate` itself."""
    try:
        if INSTALLING_MIGRATION not in MigrationRecorder(connection).applied_migrations():
            return []
        problems = installation_problems()
        retired = _retired_functions()
    except DatabaseError:  # no database to compare with: the check says nothing
        return []
    return [
        Warning(problem, hint="run `python manage.py install_legacy_functions`", obj=name, id="query_backends.W001")
        for name, problem in problems.items()
        if name not in retired
    ]


def _retired_functions():
    from query_backends.registry import DEFINITIONS
    from rollout.experiments import flag_name
    from rollout.models import QueryFlag

    retired = set(QueryFlag.objects.filter(retired_at__isnull=False).values_list("name", flat=True))
    return {d.function.sql_name for d in DEFINITIONS if flag_name(d.name) in retired}


@register()
def compiled_twins_supported(app_configs=None, **kwargs):
    """The compiled twins use Django compiler internals (twins/compiled.py lists them) verified per version."""
    if django.VERSION[:2] in SUPPORTED_DJANGO:
        return []
    versions = ", ".join(".".join(map(str, v)) for v in SUPPORTED_DJANGO)
    return [
        Warning(
            f"Django {django.get_version()} is not one the compiled twins were verified on ({versions}).",
            hint="The twins run plain QuerySets (slower, never wrong); verify twins/compiled.py and add the version.",
            obj="query_backends.twins.compiled",
            id="query_backends.W002",
        )
    ]


@register()
def definitions_agree(app_configs=None, registry=None, **kwargs):
    """Every registered query has what it needs, and its pieces agree (registry.QueryDefinition.problems)."""
    from query_backends.registry import DEFINITIONS

    return [
        Error(f"query {definition.name!r}: {problem}", obj=definition.name, id="query_backends.E001")
        for definition in registry or DEFINITIONS
        for problem in definition.problems()
    ]
