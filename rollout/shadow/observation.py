"""What one side did for one call: its value or its exception, and how long it took."""

import time
from dataclasses import dataclass, replace

from django.db import DEFAULT_DB_ALIAS, connections, transaction


class ReportedError(Exception):
    """An exception as it travels to a comparison worker: its kind and message survive, its object does not.

    `kind` is what experiments compare errors by (the exception's own `kind`, else its class name).
    """

    def __init__(self, kind, message, infrastructure=False):
        super().__init__(message)
        self.kind = kind
        self.infrastructure = infrastructure

    @classmethod
    def of(cls, exception, infrastructure):
        if isinstance(exception, cls):
            return exception
        kind = getattr(exception, "kind", None) or type(exception).__name__
        return cls(kind, f"{type(exception).__name__}: {exception}", infrastructure)


@dataclass(frozen=True)
class Observation:
    backend: str
    value: object = None
    exception: BaseException | None = None
    duration: float = 0.0
    value_omitted: bool = False  # too large to ship to a worker: compared by nothing but its presence

    @classmethod
    def of(cls, backend, behaviour, *args):
        started = time.perf_counter()
        try:
            value = behaviour(*args)
        except Exception as exc:  # noqa: BLE001 — an exception is part of what a side did
            return cls(backend, exception=exc, duration=time.perf_counter() - started)
        return cls(backend, value=value, duration=time.perf_counter() - started)

    @property
    def raised(self):
        return self.exception is not None

    @property
    def outcome(self):
        """The value, or the exception, as the experiment's compare() takes them."""
        return self.exception if self.raised else self.value

    @property
    def error_text(self):
        if not self.raised:
            return ""
        if isinstance(self.exception, ReportedError):
            return str(self.exception)
        return f"{type(self.exception).__name__}: {self.exception}"

    def unwrap(self):
        if self.exception is not None:
            raise self.exception
        return self.value

    def shippable(self, infrastructure, max_size):
        """This observation as a worker will see it: the exception reduced to a ReportedError, an answer longer
        than max_size (rows, or characters) left behind."""
        if self.raised:
            return replace(self, exception=ReportedError.of(self.exception, infrastructure))
        if hasattr(self.value, "__len__") and len(self.value) > max_size:
            return replace(self, value=None, value_omitted=True)
        return self


def observe(backend, behaviour, *args, using=DEFAULT_DB_ALIAS):
    """Run one side. Inside a transaction it gets a savepoint: its failure must not poison the transaction for
    what follows (the other side of a comparison, a fallback, a rescue)."""
    if connections[using].in_atomic_block:
        return Observation.of(backend, _in_savepoint, using, behaviour, *args)
    return Observation.of(backend, behaviour, *args)


def _in_savepoint(using, behaviour, *args):
    with transaction.atomic(using=using):
        return behaviour(*args)
