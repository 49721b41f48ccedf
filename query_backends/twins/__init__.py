"""The ORM twins of the legacy functions, grouped by family. Pure QuerySet API: no raw SQL."""


def as_rows(queryset, columns):
    """The contract's row shape: dicts whose keys are the result columns, in order."""
    return [dict(zip(columns, values)) for values in queryset.values_list(*columns)]
