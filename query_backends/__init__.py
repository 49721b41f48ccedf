"""The legacy domain: schema, PL/pgSQL functions, their ORM twins and the registry of queries."""


def run_query(name, backend, **params):
    """Run one side of a registered query directly: backend is "pg" or "orm"."""
    from query_backends.registry import run_query as _run_query

    return _run_query(name, backend, **params)
