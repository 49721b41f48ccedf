"""A twin's QuerySet compiled to SQL once per shape; later calls bind new values and execute.

For the sub-millisecond legacy queries Django spends longer building and
compiling a QuerySet than PostgreSQL spends answering it, yet for a given
shape (which branches, how many ids in an IN list) the SQL never changes —
only the values do. CompiledQuery builds the QuerySet once with unique marker
values, lets Django compile it, records where each marker landed among the
SQL parameters, and from then on binds the real values there. Rows go through
the same compiler's converters, so they are exactly what the QuerySet returns.
Anything it cannot map safely (a marker inlined into the SQL text, a marker
that vanished, an empty result known at compile time) runs the QuerySet as usual.
"""

from datetime import UTC, datetime, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connections

from query_backends.snapshot import reading_alias

_INT_BASE = -(2**62)
_DATE_BASE = datetime(1901, 1, 1, tzinfo=UTC)
_UNCOMPILABLE = object()


def _marker(kind, number):
    if kind is int:
        return _INT_BASE - number
    if kind is str:
        return f"\x01marker{number}\x01"
    return _DATE_BASE + timedelta(seconds=number)


def _is_marked(value):
    return isinstance(value, (int, str, datetime)) and not isinstance(value, bool)


class CompiledQuery:
    def __init__(self, build):
        """build(**values) returns the QuerySet for these values."""
        self.build = build
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
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(columns, values)
        if plan is _UNCOMPILABLE:
            queryset = self.build(**values)
            return [dict(zip(columns, row)) for row in queryset.values_list(*columns)]
        compiler, sql, template, slots, order = plan
        params = [list(p) if isinstance(p, list) else p for p in template]
        for index, inner, name, position in slots:
            value = values[name] if position is None else values[name][position]
            if inner is None:
                params[index] = value
            else:
                params[index][inner] = value
        with connections[reading_alias()].cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        rows = compiler.results_iter(results=[fetched], tuple_expected=True)
        return [dict(zip(columns, (row[i] for i in order))) for row in rows]

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
        names = [alias for _, _, alias in compiler.select[: compiler.col_count]]
        if sorted(names) != sorted(columns):
            return _UNCOMPILABLE
        return compiler, sql, list(template), slots, [names.index(c) for c in columns]
