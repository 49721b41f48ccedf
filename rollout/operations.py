"""What an operator names: queries, and the error a bad request gets (its message names the parameter).

The writes themselves are rollout.flags.writes; this module only finds flags by query name.
"""

from rollout.experiments import flag_name, registry


class OperationError(ValueError):
    """A bad operator request; the message names the parameter."""


def flag_names(queries):
    """The flag names of the named queries (all when none are named); unknown names are an error."""
    known = registry().names()
    unknown = [q for q in queries if q not in known]
    if unknown:
        raise OperationError(f"unknown query {', '.join(unknown)}; known: {', '.join(known)}")
    return [flag_name(q) for q in (queries or known)]


def flags_for(queries):
    """The flags of the named queries (all when none are named), read without a lock."""
    from rollout.models import QueryFlag

    names = flag_names(queries)
    found = {f.name: f for f in QueryFlag.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise OperationError(f"no flag {', '.join(missing)}: run `python manage.py migrate` to create it")
    return [found[n] for n in names]
