"""The legacy side: the nine PL/pgSQL functions, their .sql sources and a thin caller for each."""

import json
from dataclasses import dataclass
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from query_backends.errors import translated_database_errors
from rollout.snapshot import reading_alias

SQL_DIR = Path(__file__).resolve().parent / "sql"


@dataclass(frozen=True)
class LegacyFunction:
    sql_name: str
    arg_types: tuple[str, ...]
    returns_rows: bool
    returns_json: bool = False

    @property
    def signature(self):
        return f"{self.sql_name}({', '.join(self.arg_types)})"

    @property
    def source(self):
        return (SQL_DIR / f"{self.sql_name}.sql").read_text()

    def __call__(self, *args):
        casts = ", ".join(f"%s::{t}" for t in self.arg_types)
        select = f"SELECT * FROM {self.sql_name}({casts})" if self.returns_rows else f"SELECT {self.sql_name}({casts})"
        with translated_database_errors(self.sql_name), connections[reading_alias()].cursor() as cursor:
            cursor.execute(select, args)
            if not self.returns_rows:
                value = cursor.fetchone()[0]
                # Django's psycopg loaders leave jsonb as text; the caller wants the JSON value.
                return json.loads(value) if self.returns_json and value is not None else value
            columns = [col.name for col in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]


BIGINT, BOOL, TEXT, TSTZ = "bigint", "boolean", "text", "timestamptz"

# Order matters for installation: fn_getassetdetails calls fn_getassetvsquestionset,
# fn_get_siteslist_web calls fn_get_bulist (plpgsql resolves at run time, but keep it readable).
FUNCTIONS = {
    f.sql_name: f
    for f in (
        LegacyFunction("fun_getjobneed", (BIGINT, BIGINT, BIGINT), True),
        LegacyFunction("fun_getexttourjobneed", (BIGINT, BIGINT, BIGINT), True),
        LegacyFunction("fn_get_schedule_for_adhoc", (TSTZ, BIGINT, BIGINT, BIGINT, BIGINT), True),
        LegacyFunction("fn_get_bulist", (BIGINT, BOOL, BOOL, TEXT), False, returns_json=True),
        LegacyFunction("fn_getbulist_basedon_idnf", (BIGINT, BOOL, BOOL), False),
        LegacyFunction("fn_get_siteslist_web", (BIGINT, BIGINT), True),
        LegacyFunction("fn_getassetvsquestionset", (BIGINT, TEXT, TEXT), False),
        LegacyFunction("fn_getassetdetails", (TSTZ, BIGINT), True),
        LegacyFunction("fn_get_web_caps", (BIGINT,), True),
    )
}


def install_sql():
    return "\n".join(f.source for f in FUNCTIONS.values())


def drop_sql():
    return "\n".join(f"DROP FUNCTION IF EXISTS {f.signature};" for f in reversed(FUNCTIONS.values()))


def installation_problems(using=DEFAULT_DB_ALIAS):
    """{sql_name: problem} for each legacy function not installed with the signature its caller uses."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.oid::regprocedure::text, to_regprocedure(wanted.signature) IS NOT NULL "
            "FROM unnest(%s::text[], %s::text[]) AS wanted(name, signature) "
            "LEFT JOIN pg_proc p ON p.proname = wanted.name AND pg_function_is_visible(p.oid) "
            "ORDER BY 1, 2",
            [list(FUNCTIONS), [f.signature for f in FUNCTIONS.values()]],
        )
        rows = cursor.fetchall()
    installed = {name: [] for name in FUNCTIONS}
    present = set()
    for name, found, matches in rows:
        if found:
            installed[name].append(found)
        if matches:
            present.add(name)
    return {
        name: f"{FUNCTIONS[name].signature} is "
        + (f"installed with another signature: {', '.join(installed[name])}" if installed[name] else "missing")
        for name in FUNCTIONS
        if name not in present
    }


def install(using=DEFAULT_DB_ALIAS):
    """(Re)create every legacy function from its .sql file (CREATE OR REPLACE: running it again changes nothing)."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for function in FUNCTIONS.values():
            cursor.execute(function.source)
