"""EXPLAIN (ANALYZE, BUFFERS) of the generic plans each side of a query runs, for one parameter set.

Production binds parameters server-side and prepares statements (`DB_PREPARE_THRESHOLD`): after a few runs
PostgreSQL may keep one generic plan, made without the values. That is the plan a twin must be fast with, so
this module shows it (`plan_cache_mode = force_generic_plan`):

- twin: every statement the twin sends, captured on the way out, then `PREPARE`d with the types psycopg
  binds and `EXPLAIN (ANALYZE, BUFFERS) EXECUTE`d with the same values;
- floor: the hand-written SQL, the same way;
- function: the statements inside the PL/pgSQL function, through `auto_explain` (nested statements, logged
  as NOTICEs on this session; `LOAD` needs a superuser, else the side says why).

Everything runs in one transaction that is rolled back: nothing stays in the database.
"""

import re

from django.db import connection, transaction
from psycopg import sql
from psycopg.adapt import PyFormat, Transformer

_PYFORMAT = re.compile(r"%\((\w+)\)s|%s|%%")
_STATEMENT = "query_backends_explain"
_AUTO_EXPLAIN = (
    "SET LOCAL auto_explain.log_min_duration = 0",
    "SET LOCAL auto_explain.log_analyze = on",
    "SET LOCAL auto_explain.log_buffers = on",
    "SET LOCAL auto_explain.log_nested_statements = on",
    "SET LOCAL auto_explain.log_level = notice",
)


def numbered(text, params):
    """(SQL with $1…$n, the values in that order) from Django's %s or the floor's %(name)s placeholders."""
    values, names = [], {}

    def number(match):
        if match.group(0) == "%%":
            return "%"
        if match.group(1) is None:
            values.append(params[len(values)])
            return f"${len(values)}"
        if match.group(1) not in names:
            values.append(params[match.group(1)])
            names[match.group(1)] = len(values)
        return f"${names[match.group(1)]}"

    return _PYFORMAT.sub(number, text), values


def generic_plan(cursor, text, params):
    """The EXPLAIN (ANALYZE, BUFFERS) lines of one statement's generic plan, run with these values."""
    statement, values = numbered(text, params)
    raw = cursor.connection
    transformer = Transformer(raw)
    transformer.dump_sequence(values, [PyFormat.AUTO] * len(values))
    types = [raw.adapters.types.get(oid).regtype if oid else "unknown" for oid in transformer.types]
    cursor.execute(
        sql.SQL("PREPARE {} ({}) AS {}").format(
            sql.Identifier(_STATEMENT), sql.SQL(", ").join(map(sql.SQL, types)), sql.SQL(statement)
        )
    )
    try:
        cursor.execute(
            sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE {} ({})").format(
                sql.Identifier(_STATEMENT), sql.SQL(", ").join(map(sql.Literal, values))
            )
        )
        return [line for (line,) in cursor.fetchall()]
    finally:
        cursor.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(_STATEMENT)))


def plans(definition, params):
    """{side: [lines]} of the generic plans of the function, the twin and the floor for one parameter set."""
    statements = []

    def capture(execute, text, values, many, context):
        statements.append((text, list(values or ())))
        return execute(text, values, many, context)

    found = {}
    with transaction.atomic():
        connection.ensure_connection()
        raw = connection.connection
        with raw.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            with connection.execute_wrapper(capture):
                definition.run("orm", params)
            found["twin"] = [line for text, values in statements for line in (generic_plan(cursor, text, values))]
            found["floor"] = generic_plan(cursor, definition.floor.sql, definition.floor.bind(params))
            found["function"] = _function_plans(raw, cursor, definition, params)
        transaction.set_rollback(True)
    return found


def _function_plans(raw, cursor, definition, params):
    try:
        with transaction.atomic():
            cursor.execute("LOAD 'auto_explain'")
    except Exception as exc:  # noqa: BLE001 — the side says why it has no plan, the others still print
        return [f"no plan: auto_explain could not be loaded ({exc})"]
    notices = []

    def keep(diagnostic):
        notices.append(diagnostic.message_primary)

    for setting in _AUTO_EXPLAIN:
        cursor.execute(setting)
    raw.add_notice_handler(keep)
    try:
        definition.run("pg", params)
    finally:
        raw.remove_notice_handler(keep)
        cursor.execute("SET LOCAL auto_explain.log_min_duration = -1")
    # The nested statements' plans, innermost first; the outer `SELECT * FROM fn(…)` adds nothing.
    return [line for notice in notices if "Function Scan on" not in notice for line in notice.splitlines()]
