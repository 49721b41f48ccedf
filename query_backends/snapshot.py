"""One snapshot for both backends: a REPEATABLE READ transaction, so both read the same rows and clock."""

from contextlib import contextmanager

from django.db import connections, transaction


@contextmanager
def snapshot(using="default"):
    connection = connections[using]
    outer = connection.in_atomic_block
    with transaction.atomic(using=using):
        if not outer:
            # Must be the transaction's first statement; inside an outer block the caller owns isolation.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def run_isolated(function, *args, using="default", **kwargs):
    """Run inside a savepoint: a failure (returned, not raised) leaves the snapshot usable."""
    try:
        with transaction.atomic(using=using):
            return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 — the outcome of a backend is its value or its error
        return exc
