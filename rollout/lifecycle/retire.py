"""Retire a query: write a reversible Django migration, into the app that owns the query, that drops its function.

The migration (not atomic: each step commits) does, forward:
1. mark the flag retired (a flags.writes write): the candidate serves everyone with no decision, no shadow and
   no fallback, and the flag's previous state is kept on it;
2. wait for every process to see that (twice the flag recheck bound);
3. DROP FUNCTION; when PostgreSQL refuses, the flag is given back before the migration fails.
Backward, in reverse: CREATE the function again from its pg_get_functiondef text (written into the migration),
then give the flag back its previous state.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.db import DatabaseError, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from rollout.conf import get_setting
from rollout.experiments import flag_name, get_experiment
from rollout.flags.history import values_of
from rollout.flags.writes import write
from rollout.lifecycle import readiness
from rollout.models import QueryFlag
from rollout.operations import OperationError
from rollout.postgres import catalog, dependencies

TEMPLATE = '''"""Retire {query}: its twin serves everyone and the function {signature} is dropped.

Written by `manage.py rollout retire {query}` on {written:%Y-%m-%d %H:%M} UTC (docs/lifecycle.md). Migrating
back (`{back}`) recreates the function exactly as it was (DEFINITION, from pg_get_functiondef) and gives the
query's flag back the state it had.
"""

from django.db import migrations

from rollout.lifecycle import retire

DEFINITION = {definition!r}


class Migration(migrations.Migration):
    atomic = False  # the retirement commits and reaches every process before the function goes

    dependencies = {dependencies!r}

    operations = [
        migrations.RunPython(retire.forward({query!r}, {name!r}), retire.backward({query!r})),
        migrations.RunPython(retire.wait_for_every_process, migrations.RunPython.noop),
        migrations.RunPython(retire.drop({query!r}, {drop!r}), retire.create(DEFINITION)),
    ]
'''


def retire_flag(query, why, source="migration", undo="migrate the retirement back"):
    """Mark the flag retired, keeping its state to give back and its function's signature (which `rollout
    functions` still lists once the function is gone). The migration's first step.

    undo: how this retirement is brought back, as a refused write names it (the demo retires with no migration)."""
    signature = readiness.control_function(query)

    def change(flag):
        if flag.retired_at is not None:
            return []  # a re-run of a migration that failed after this step, or a second one: the function is gone
        flag.retired_from = {
            "values": values_of(flag),
            "stage_since": flag.stage_since and flag.stage_since.isoformat(),
            "function": signature,
            # what a rollout.Query reads its parameters from once the function is gone
            "catalog": catalog.as_data(catalog.find(signature)),
            "undo": undo,
        }
        flag.retired_at = timezone.now()
        return ["retired_from", "retired_at"]

    write([flag_name(query)], change, source=source, reason=f"retired: {why}")


def restore_flag(query, source="migration", reason="retirement migrated back"):
    """Give a retired flag back the state it had (the migration's last step backward)."""

    def change(flag):
        if flag.retired_at is None:
            return []
        before = flag.retired_from or {}
        fields = ["retired_at", "retired_from", "stage_since"]
        for field, value in (before.get("values") or {}).items():
            model_field = QueryFlag._meta.get_field(field)
            if model_field.name == "retired_at":
                continue
            setattr(flag, field, model_field.to_python(value) if value is not None else None)
            fields.append(field)
        flag.retired_at, flag.retired_from = None, {}
        flag.stage_since = QueryFlag._meta.get_field("stage_since").to_python(before.get("stage_since"))
        return fields

    write([flag_name(query)], change, source=source, reason=reason)


def retired_function(query):
    """The catalog's description of a retired query's dropped function, as its flag keeps it; None when the query
    is not retired."""
    flag = QueryFlag.objects.filter(name=flag_name(query), retired_at__isnull=False).first()
    kept = flag.retired_from.get("catalog") if flag else None
    return catalog.from_data(kept) if kept else None


def forward(query, migration):
    def run(apps, schema_editor):
        retire_flag(query, f"migration {migration}")

    return run


def backward(query):
    def run(apps, schema_editor):
        restore_flag(query)

    return run


def drop(query, statement):
    """The last step forward: DROP FUNCTION. When PostgreSQL refuses (something came to depend on the function, a
    lock), the flag is given back before the migration fails: a retirement that did not happen leaves the query
    as it was, not retired with its function still there and every flag write refused."""

    def run(apps, schema_editor):
        try:
            with transaction.atomic(using=schema_editor.connection.alias), schema_editor.connection.cursor() as cur:
                cur.execute(statement)
        except DatabaseError:
            restore_flag(query, reason="retirement failed: the function could not be dropped")
            raise

    return run


def create(definition):
    """The first step back: the function created again, exactly as it was."""

    def run(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(definition)

    return run


def wait_for_every_process(apps=None, schema_editor=None):
    """Every process sees a flag change within 1.5 × FLAG_RECHECK_SECONDS; wait twice that before the drop."""
    time.sleep(2 * get_setting("FLAG_RECHECK_SECONDS"))


def _app_label(query):
    label = getattr(get_experiment(query), "app_label", None)
    if not label or label not in {config.label for config in apps.get_app_configs()}:
        raise OperationError(f"{query}: its experiment does not name an installed app that owns it (app_label)")
    return label


def _next_name(loader, label, query):
    numbers = [int(m.group()) for _, name in loader.disk_migrations if _ == label and (m := re.match(r"\d+", name))]
    return f"{max(numbers, default=0) + 1:04d}_retire_{query}"


@dataclass(frozen=True)
class Written:
    """A retirement migration written: where, and the migration of its app to migrate back to."""

    path: Path
    app_label: str
    name: str
    back_to: str  # the app's migration before it ("zero" when none): numbers need not follow one another


def write_migration(query, force=False):
    """Write the retirement migration of a ready query (or any, with force); returns what was Written."""
    found = readiness.check(query)
    if not found.ready and not force:
        refused = "; ".join(f"{r.check}: {r.text}" for r in found.reasons if r.ready is not True)
        raise OperationError(f"{query}: not ready to retire ({refused}); see `rollout retire {query} --check`")
    function = dependencies.find(readiness.control_function(query))
    if function is None:
        raise OperationError(f"{query}: {readiness.control_function(query)} is not installed: nothing to drop")
    label = _app_label(query)
    loader = MigrationLoader(None, ignore_no_migrations=True)
    name = _next_name(loader, label, query)
    own = loader.graph.leaf_nodes(label)
    depends = sorted({*own, *loader.graph.leaf_nodes("rollout")})
    back_to = own[0][1] if len(own) == 1 else "zero" if not own else None
    if back_to is None:
        raise OperationError(f"{label}: its migrations have {len(own)} leaves; merge them (`makemigrations --merge`)")
    folder = Path(apps.get_app_config(label).path) / "migrations"
    if not (folder / "__init__.py").exists():  # an app with no migrations yet gets its package
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").touch()
    path = folder / f"{name}.py"
    path.write_text(
        TEMPLATE.format(
            query=query,
            name=f"{label}.{name}",
            signature=function.signature,
            written=timezone.now(),
            back=f"python manage.py migrate {label} {back_to}",
            definition=dependencies.definition(function),
            dependencies=depends,
            # IF EXISTS: gone already (a second retirement migration of the query) is retired, not a failure that
            # would give the flag back with no function behind it.
            drop=f"DROP FUNCTION IF EXISTS {dependencies.qualified(function)};",
        )
    )
    return Written(path, label, name, back_to)
