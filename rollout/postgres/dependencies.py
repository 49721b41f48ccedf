"""What in and around the database still needs a function: read from PostgreSQL's own catalogs and statistics.

- pg_depend: views and materialized views (through their rewrite rules), column defaults, check constraints,
  index expressions, triggers and anything else recorded as depending on the function;
- pg_proc.prosrc: other functions and procedures whose body names it (PL/pgSQL resolves names at run time,
  so pg_depend does not know them);
- pg_stat_user_functions: how often it was called (only with track_functions = 'pl' or 'all');
- pg_stat_statements, when the extension is installed: statement texts that name it.
"""

import re
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections

# pg_depend rows pointing at the function, each described as the thing an operator would look for.
_DEPENDENTS = """
SELECT CASE
         WHEN d.classid = 'pg_rewrite'::regclass THEN
           (SELECT CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END || ' ' || r.ev_class::regclass
              FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)
         WHEN d.classid = 'pg_trigger'::regclass THEN
           (SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass FROM pg_trigger t WHERE t.oid = d.objid)
         WHEN d.classid = 'pg_attrdef'::regclass THEN
           (SELECT 'default of ' || a.adrelid::regclass || '.' || att.attname
              FROM pg_attrdef a JOIN pg_attribute att ON att.attrelid = a.adrelid AND att.attnum = a.adnum
             WHERE a.oid = d.objid)
         WHEN d.classid = 'pg_constraint'::regclass THEN
           (SELECT 'check constraint ' || c.conname || ' on ' || c.conrelid::regclass
              FROM pg_constraint c WHERE c.oid = d.objid)
         WHEN d.classid = 'pg_class'::regclass THEN
           (SELECT CASE c.relkind WHEN 'i' THEN 'index ' ELSE 'relation ' END || c.oid::regclass
              FROM pg_class c WHERE c.oid = d.objid)
         ELSE pg_describe_object(d.classid, d.objid, d.objsubid)
       END
FROM pg_depend d
WHERE d.refclassid = 'pg_proc'::regclass AND d.refobjid = %s AND d.deptype IN ('n', 'a')
ORDER BY 1
"""
_BODIES = r"""
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.oid <> %s AND p.prokind IN ('f', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND p.prosrc ~* ('\m' || %s || '\M')
ORDER BY 1
"""


@dataclass(frozen=True)
class Function:
    oid: int
    signature: str  # oid::regprocedure, e.g. fn_get_web_caps(bigint)
    name: str  # proname, what other code names it by
    language: str = "plpgsql"  # its pg_language name: which track_functions setting counts its calls


def find(signature):
    """The installed function of this signature (regprocedure text), or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.oid, p.oid::regprocedure::text, p.proname, l.lanname FROM pg_proc p "
            "JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = to_regprocedure(%s)",
            [signature],
        )
        row = cursor.fetchone()
    return Function(*row) if row else None


def dependents(function):
    """What pg_depend records as depending on the function, each in words ("view report_caps", …)."""
    with connection.cursor() as cursor:
        cursor.execute(_DEPENDENTS, [function.oid])
        return [row[0] for row in cursor.fetchall()]


def bodies_naming(function):
    """Other functions and procedures whose body names it (a word match: a comment counts too)."""
    with connection.cursor() as cursor:
        cursor.execute(_BODIES, [function.oid, _literally(function.name)])
        return [row[0] for row in cursor.fetchall()]


def _literally(name):
    """The name as a regular expression matching only itself: `$` (legal in a name) or a quoted name's `(` would
    otherwise be an anchor or a syntax error, and a body calling the function would go unnamed."""
    return re.sub(r"(\W)", r"\\\1", name)


def counted_here(using):
    """Whether PostgreSQL counts a call made through the alias `using` where calls() reads (default's database):
    a read replica keeps its own statistics. A call counted as the application's own but never seen here would
    hide as many calls from outside — a function someone else still calls would look ready to drop."""
    if using == DEFAULT_DB_ALIAS:
        return True
    mine, theirs = connections[DEFAULT_DB_ALIAS].settings_dict, connections[using].settings_dict
    return all(mine.get(key) == theirs.get(key) for key in ("NAME", "HOST", "PORT"))


def track_functions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('track_functions')")
        return cursor.fetchone()[0]


def calls(function):
    """The function's call count since the statistics were last reset (0 before its first counted call)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # another session's calls, as flushed now
        cursor.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcid = %s", [function.oid])
        return int(cursor.fetchone()[0])


def statements_naming(function, limit=10):
    """[(statement text, calls)] of pg_stat_statements naming the function; None when the extension is absent."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_stat_statements') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(
            r"SELECT query, calls FROM pg_stat_statements WHERE query ~* ('\m' || %s || '\M') "
            "ORDER BY calls DESC LIMIT %s",
            [_literally(function.name), limit],
        )
        return cursor.fetchall()


# schema.name(identity arguments) of the function p: the same function whatever the search_path of whoever runs it.
_QUALIFIED = (
    "format('%%I.%%I(%%s)', (SELECT nspname FROM pg_namespace WHERE oid = p.pronamespace), p.proname, "
    "pg_get_function_identity_arguments(p.oid))"
)
# What pg_get_functiondef leaves out and a function recreated must have again: its owner, its privileges (a
# function created anew is executable by PUBLIC; one that was not must not become so) and its comment.
_DEFINITION = rf"""
SELECT concat_ws(E';\n',
         rtrim(pg_get_functiondef(p.oid), E'\n'),
         format('ALTER FUNCTION %%s OWNER TO %%s', q.name, p.proowner::regrole),
         CASE WHEN p.proacl IS NOT NULL THEN format('REVOKE ALL ON FUNCTION %%s FROM PUBLIC', q.name) END,
         (SELECT string_agg(format('GRANT %%s ON FUNCTION %%s TO %%s%%s', a.privilege_type, q.name,
                                   CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                                   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), E';\n')
            FROM aclexplode(p.proacl) a WHERE a.grantee <> p.proowner),
         format('COMMENT ON FUNCTION %%s IS %%L', q.name, obj_description(p.oid, 'pg_proc'))
       ) || ';'
FROM pg_proc p
CROSS JOIN LATERAL (SELECT {_QUALIFIED} AS name) q
WHERE p.oid = %s
"""


def qualified(function):
    """schema.name(identity arguments): what the retirement migration drops, whatever its search_path."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_QUALIFIED} FROM pg_proc p WHERE p.oid = %s", [function.oid])
        return cursor.fetchone()[0]


def definition(function):
    """The statements that create the function again as it is: its CREATE OR REPLACE text as PostgreSQL writes it
    (pg_get_functiondef), then its owner, privileges and comment."""
    with connection.cursor() as cursor:
        cursor.execute(_DEFINITION, [function.oid])
        return cursor.fetchone()[0]
