"""PostgreSQL functions and operators the twins use that Django's ORM does not name."""

from django.db.models import Aggregate, BooleanField, Func, TextField


class ArrayToString(Func):
    function = "array_to_string"


class Glue(Func):
    """a || b || …: text concatenation as the legacy SQL writes it (NULL if any part is NULL). Django's Concat
    wraps every part in COALESCE, which both changes that meaning and costs a call per part per row."""

    template = "(%(expressions)s)"
    arg_joiner = " || "
    output_field = TextField()


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
    array = "{}"  # how the second expression becomes the array

    def as_sql(self, compiler, connection, **extra_context):
        (column, column_params), (array, array_params) = (compiler.compile(e) for e in self.get_source_expressions())
        return f"({column} = ANY({self.array.format(array)}))", (*column_params, *array_params)


class InArrayOf(EqualsAny):
    """column = ANY(ARRAY[value]): equality that cannot be hashed or merged. As the join condition of a
    recursive walk it leaves the planner one plan, a nested loop probing the column's index once per row of
    the walk: a generic plan guesses ten rows per step, for which it would otherwise hash a whole
    sequential scan of the table at every level (docs/performance.md)."""

    array = "ARRAY[{}]"


class JSONObjectAgg(Aggregate):
    """json_object_agg, returned as text. json, not jsonb: an answer that is only read back need not have
    hundreds of thousands of keys sorted and binary-encoded (half the database time of a 200,000-unit tree)."""

    function = "json_object_agg"
    output_field = TextField()


class JSONBuildObject(Func):
    function = "json_build_object"
    output_field = TextField()
