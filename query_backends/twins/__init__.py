"""The ORM twins of the legacy functions, grouped by family. Pure QuerySet API: no raw SQL."""

from django.db.models import IntegerField, Value


def as_rows(queryset, columns):
    """The contract's row shape: dicts whose keys are the result columns, in order."""
    return [dict(zip(columns, values)) for values in queryset.values_list(*columns)]


def one_value(rows, aggregate):
    """rows aggregated with no GROUP BY: exactly one row, its `answer` NULL over no rows."""
    grouped = rows.annotate(one=Value(1, output_field=IntegerField())).values("one")
    return grouped.annotate(answer=aggregate).values_list("answer")
