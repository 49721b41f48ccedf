"""PostgreSQL functions and operators the twins use that Django's ORM does not name."""

from django.db.models import Aggregate, BooleanField, Func, TextField


class ArrayToString(Func):
    function = "array_to_string"


class StringToArray(Func):
    function = "string_to_array"


class Unnest(Func):
    """A set-returning function: one row per element; give it the element's output_field."""

    function = "unnest"


class EqualsAny(Func):
    """column = ANY(array). With an ARRAY(subquery) the ids travel as one array inside the statement (an
    InitPlan), and PostgreSQL reads the table by one index scan over the sorted ids, which stays cheap from
    a handful of rows to hundreds of thousands — unlike a join planned from a guessed row count."""

    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra_context):
        (column, column_params), (array, array_params) = (compiler.compile(e) for e in self.get_source_expressions())
        return f"({column} = ANY({array}))", (*column_params, *array_params)


class JSONObjectAgg(Aggregate):
    """json_object_agg, returned as text. json, not jsonb: an answer that is only read back need not have
    hundreds of thousands of keys sorted and binary-encoded (half the database time of a 200,000-unit tree)."""

    function = "json_object_agg"
    output_field = TextField()


class JSONBuildObject(Func):
    function = "json_build_object"
    output_field = TextField()
