"""Read-only answers: one cached answer is handed to every caller as it is, so no caller may change it.

freeze() turns an answer made of lists, dicts, tuples and sets of plain values into the same shape built
of ReadOnlyList, ReadOnlyDict and frozenset — the first two subclasses of list and dict, so they compare
equal to the plain answer and serialise like it — and measures its size on the way (the in-process tier's
budget is in bytes).
"""

import sys
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from uuid import UUID

# Values that cannot change: shared as they are.
LEAVES = frozenset({str, int, float, bool, type(None), bytes, Decimal, datetime, date, dt_time, timedelta, UUID})


def _refuse(self, *args, **kwargs):
    raise TypeError(f"a cached answer is read-only: change a copy ({type(self).__bases__[0].__name__}(answer))")


class ReadOnlyList(list):
    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):  # pickle and deepcopy rebuild it whole (they would append item by item)
        return ReadOnlyList, (list(self),)

    def __copy__(self):
        return list(self)


class ReadOnlyDict(dict):
    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    setdefault = update = pop = popitem = clear = _refuse

    def __reduce__(self):
        return ReadOnlyDict, (dict(self),)

    def __copy__(self):
        return dict(self)


def freeze(value, limit=None):
    """(a read-only answer equal to value, its approximate size in bytes), or None when it holds other
    objects or (given a limit) is bigger than limit bytes — found out early, before copying all of it."""
    try:
        return _Freezer(float("inf") if limit is None else limit).freeze(value)
    except _Unfreezable:
        return None


class _Unfreezable(Exception):
    pass


_size = sys.getsizeof


class _Freezer:
    def __init__(self, limit):
        self.limit, self.total = limit, 0

    def freeze(self, value):
        frozen = self._freeze(value)
        return frozen, self.total

    def _count(self, n):
        self.total += n
        if self.total > self.limit:
            raise _Unfreezable("over the limit")

    def _freeze(self, value):
        kind = type(value)
        if kind in LEAVES:
            self._count(_size(value))
            return value
        if kind is list or kind is ReadOnlyList or kind is tuple:
            self._count(_size(value))
            items = [self._freeze(item) for item in value]
            return tuple(items) if kind is tuple else ReadOnlyList(items)
        if kind is dict or kind is ReadOnlyDict:
            if all(type(v) in LEAVES for v in value.values()):  # the usual row: one C-speed copy
                self._count(_size(value) + sum(map(_size, value.values())))
                return ReadOnlyDict(value)
            self._count(_size(value))
            return ReadOnlyDict({key: self._freeze(item) for key, item in value.items()})
        if (kind is set or kind is frozenset) and all(type(v) in LEAVES for v in value):
            self._count(_size(value) + sum(map(_size, value)))
            return frozenset(value)
        raise _Unfreezable(kind)
