"""A twin's QuerySet compiled to SQL once per shape; later calls bind new values and execute.

For the sub-millisecond legacy queries Django spends longer building and
compiling a QuerySet than PostgreSQL spends answering it, yet for a given
shape (which branches, how many ids in an IN list) the SQL never changes —
only the values do. CompiledQuery builds the QuerySet once with unique marker
values, lets Django compile it, records where each marker landed among the
SQL parameters, and from then on binds the real values there. Rows go through
the converters Django chose for the compiled columns, so they are exactly what
the QuerySet returns (less the int() casts of columns PostgreSQL already returns
as integers, dropped after a plan's first execution). Anything it cannot map safely (a marker inlined into the
SQL text, a marker that vanished, an empty result known at compile time,
composite columns) runs the QuerySet as usual.

Django internals it relies on, verified on SUPPORTED_DJANGO only (the system
check query_backends.W002 warns on any other version, and the twins then run
plain QuerySets):
`Query.get_compiler(using)`, `SQLCompiler.as_sql()` (its SQL and parameter list),
`SQLCompiler.select` and `.col_count` (the selected columns and their aliases),
`SQLCompiler.get_converters()` and `.has_composite_fields()`, the converter call
signature `converter(value, expression, connection)`, and `EmptyResultSet`.

Threads: a Plan is built by one thread and then only read (calls bind values into copies). A call
executes on the calling thread's own connection (`connections[reading_alias()]`) and
hands the converters that connection — never the compiling thread's, which is
why rows are converted here rather than by `SQLCompiler.apply_converters`,
which binds the compiler's. Plans live in a bounded dict: a lookup is one dict read (atomic under
the GIL), an addition takes a lock and, at the bound, drops the oldest shape; two threads compiling
one shape at once build equal plans and either may stay.
"""

import threading
import weakref
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import django
from django.core.exceptions import EmptyResultSet
from django.db import connections

from rollout.snapshot import reading_alias

SUPPORTED_DJANGO = ((5, 2),)
COMPILING = django.VERSION[:2] in SUPPORTED_DJANGO
# Shapes kept per twin query: an IN list makes one shape per length, and tree walks return ids lists of many
# lengths. A plan is its SQL and a few tuples (KiBs); an evicted shape is compiled again: slower, never wrong.
PLANS_PER_QUERY = 256
_INT_BASE = -(2**62)
_DATE_BASE = datetime(1901, 1, 1, tzinfo=UTC)
_UNCOMPILABLE = object()
_INTEGER_TYPES = {20, 21, 23}  # int8, int2, int4: psycopg loads them as int


def _marker(kind, number):
    if kind is int:
        return _INT_BASE - number
    if kind is str:
        return f"\x01marker{number}\x01"
    return _DATE_BASE + timedelta(seconds=number)


def _is_marked(value):
    return isinstance(value, (int, str, datetime)) and not isinstance(value, bool)


class Plan(NamedTuple):
    sql: str
    template: tuple
    arrays: tuple  # the indexes of array parameters, copied per call: the plan is shared
    slots: tuple  # (parameter index, index inside an array parameter or None, value name, list position or None)
    order: tuple | None  # where each wanted column sits among the selected ones; None: in the order asked
    converters: tuple  # (position, converters, expression)
    typed: bool  # whether the converters were checked against the column types PostgreSQL returns


class CompiledQuery:
    def __init__(self, build):
        """build(**values) returns the QuerySet for these values."""
        self.build = build
        self._lock = threading.Lock()  # taken to add a plan; a lookup is one dict read, safe under the GIL
        self._plans = {}

    @staticmethod
    def shape(columns, values):
        """What changes the SQL: the columns, booleans and Nones, and the length of lists."""
        parts = []
        for name, value in sorted(values.items()):
            if isinstance(value, (list, tuple)):
                parts.append((name, "len", len(value)))
            elif not _is_marked(value):
                parts.append((name, "value", value))
        return (tuple(columns), tuple(parts))

    def rows(self, columns, **values):
        """The QuerySet's rows as dicts keyed by `columns`, in order."""
        key = self.shape(columns, values)
        plan = self._plan(key, columns, values) if COMPILING else _UNCOMPILABLE
        if plan is _UNCOMPILABLE:
            queryset = self.build(**values)
            return [dict(zip(columns, row)) for row in queryset.values_list(*columns)]
        params = list(plan.template)
        for index in plan.arrays:
            params[index] = list(params[index])
        for index, inner, name, position in plan.slots:
            value = values[name] if position is None else values[name][position]
            if inner is None:
                params[index] = value
            else:
                params[index][inner] = value
        connection = connections[reading_alias()]  # this thread's own, on the alias being read
        if plan.typed:
            fetched = _fetched(connection, plan.sql, params)
        else:
            fetched, types = _fetched(connection, plan.sql, params, types=True)
            plan = self._typed(key, plan, types)
        if plan.converters:
            fetched = [_converted(row, plan.converters, connection) for row in fetched]
        if plan.order is None:  # the usual case: the columns come in the order asked
            return [dict(zip(columns, row)) for row in fetched]
        return [dict(zip(columns, (row[i] for i in plan.order))) for row in fetched]

    def _plan(self, key, columns, values):
        plan = self._plans.get(key)
        if plan is None:
            plan = self._compile(columns, values)  # outside the lock: two threads may both compile; equal plans
            with self._lock:
                if (
                    key not in self._plans and len(self._plans) >= PLANS_PER_QUERY
                ):  # the oldest shape goes (dicts keep insertion order)
                    del self._plans[next(iter(self._plans))]
                self._plans[key] = plan
        return plan

    def _typed(self, key, plan, types):
        """The plan without the converters that only cast to int what PostgreSQL returns as an integer.

        Django casts every integer-typed expression that is not a plain column (a CTE's column, an
        annotation) with int() per row, for backends whose driver may hand back another type; psycopg
        hands back int for int2/int4/int8, so on such a column the cast changes nothing and costs a call per
        row. A column of any other type (numeric, say) keeps its cast. Known after the first execution.
        """
        kept = tuple(
            (position, convs, expression)
            for position, convs, expression in plan.converters
            if not (types[position] in _INTEGER_TYPES and convs == (_integer_cast(expression),))
        )
        plan = plan._replace(converters=kept, typed=True)
        with self._lock:
            if key in self._plans:
                self._plans[key] = plan
        return plan

    def _compile(self, columns, values):
        markers, wanted, number = {}, {}, 0
        for name, value in values.items():
            if isinstance(value, (list, tuple)):
                markers[name] = []
                for position, item in enumerate(value):
                    number += 1
                    marker = _marker(type(item), number) if _is_marked(item) else item
                    markers[name].append(marker)
                    wanted[marker] = (name, position)
            elif _is_marked(value):
                number += 1
                markers[name] = _marker(type(value), number)
                wanted[markers[name]] = (name, None)
            else:
                markers[name] = value
        queryset = self.build(**markers).values_list(*columns)
        compiler = queryset.query.get_compiler(queryset.db)
        try:
            sql, template = compiler.as_sql()
        except EmptyResultSet:
            return _UNCOMPILABLE
        slots = []
        for index, param in enumerate(template):
            items = enumerate(param) if isinstance(param, list) else [(None, param)]
            for inner, item in items:
                if isinstance(item, (int, str, datetime)) and item in wanted:
                    slots.append((index, inner, *wanted[item]))
        found = {(name, position) for _, _, name, position in slots}
        inlined = any(str(marker) in sql for marker in wanted if not isinstance(marker, datetime))
        if found != set(wanted.values()) or inlined:
            return _UNCOMPILABLE
        selected = compiler.select[: compiler.col_count]
        names = [alias for _, _, alias in selected]
        fields = [expression for expression, _, _ in selected]
        if sorted(names) != sorted(columns) or compiler.has_composite_fields(fields):
            return _UNCOMPILABLE
        converters = tuple(
            (position, tuple(convs), expression)
            for position, (convs, expression) in compiler.get_converters(fields).items()
        )
        order = tuple(names.index(c) for c in columns)
        arrays = tuple(index for index, param in enumerate(template) if isinstance(param, list))
        return Plan(
            sql,
            tuple(template),
            arrays,
            tuple(slots),
            None if order == tuple(range(len(columns))) else order,
            converters,
            typed=not converters,
        )


def _integer_cast(expression):
    """The expression's own int() cast (BaseExpression.convert_value for an integer field), or None."""
    if expression.output_field.get_internal_type().endswith("IntegerField"):
        return expression.convert_value
    return None


def _fetched(connection, sql, params, types=False):
    """Every row of one statement, on the Django connection's own psycopg connection.

    Django's cursor (a wrapper object, the execute-wrapper chain, its checks) and a new psycopg cursor per
    call cost a small twin a fifth of its time (docs/performance.md). The plan needs none of it but what
    keeps Django's bookkeeping true: the health check, the connection (from the pool), the refusal inside a
    broken atomic block, and Django's error wrapping (which marks the connection for its end-of-request
    check). Whoever watches statements — the debug log, CaptureQueriesContext, an execute_wrapper — gets
    them through Django's cursor, unchanged. The statement is prepared by psycopg after
    DB_PREPARE_THRESHOLD runs, as through Django's cursor.
    """
    if connection.queries_logged or connection.execute_wrappers:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return _result(cursor, types)
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = _kept_cursor(connection)
        try:
            cursor.execute(sql, params)
            result = _result(cursor, types)
        except BaseException:
            _drop_cursor(connection)  # whatever state a failure left it in, the next call starts afresh
            raise
        if cursor.rowcount > KEPT_CURSOR_ROWS:
            _drop_cursor(connection)  # closing frees the raw result it holds until its next statement
        return result


# One psycopg cursor kept per Django connection (so per thread), on that connection's current psycopg
# connection; it holds its last raw result until its next statement, so only after small ones.
_CURSORS = weakref.WeakKeyDictionary()
KEPT_CURSOR_ROWS = 1000


def _kept_cursor(connection):
    raw = connection.connection
    cursor = _CURSORS.get(connection)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = _CURSORS[connection] = raw.cursor()
    return cursor


def _drop_cursor(connection):
    cursor = _CURSORS.pop(connection, None)
    if cursor is not None:
        cursor.close()


def _result(cursor, types):
    """The rows, and with `types` the type OID of each column."""
    rows = cursor.fetchall()
    return (rows, [column.type_code for column in cursor.description]) if types else rows


def _converted(row, converters, connection):
    row = list(row)
    for position, convs, expression in converters:
        value = row[position]
        for converter in convs:
            value = converter(value, expression, connection)
        row[position] = value
    return row
