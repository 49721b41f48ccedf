"""One snapshot for both backends: a REPEATABLE READ transaction, so both read the same rows and clock.

A snapshot may be taken on another database alias (a read replica, for shadow
comparisons): inside it, both backends read from that alias — the functions'
callers and the compiled twins ask `reading_alias()`, and `SnapshotRouter`
sends every ORM read there.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction

_reading = ContextVar("query_backends_reading_alias", default=None)


def reading_alias():
    """The alias legacy queries read from here: a snapshot's, else the default."""
    return _reading.get() or DEFAULT_DB_ALIAS


class SnapshotRouter:
    """Django database router: ORM reads inside a snapshot go to the snapshot's alias."""

    def db_for_read(self, model, **hints):
        return _reading.get()


@contextmanager
def snapshot(using=DEFAULT_DB_ALIAS):
    connection = connections[using]
    outer = connection.in_atomic_block
    token = _reading.set(using)
    try:
        with transaction.atomic(using=using):
            if not outer:
                # Must be the transaction's first statement; inside an outer block the caller owns isolation.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield
    finally:
        _reading.reset(token)
