"""What one backend did for one call: its value or its exception, and how long it took."""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    backend: str
    value: object = None
    exception: BaseException | None = None
    duration: float = 0.0

    @classmethod
    def of(cls, backend, behaviour, *args):
        started = time.perf_counter()
        try:
            value = behaviour(*args)
        except Exception as exc:  # noqa: BLE001 — an exception is part of what a backend did
            return cls(backend, exception=exc, duration=time.perf_counter() - started)
        return cls(backend, value=value, duration=time.perf_counter() - started)

    @property
    def raised(self):
        return self.exception is not None

    @property
    def outcome(self):
        """The value, or the exception, as the equality function compares them."""
        return self.exception if self.raised else self.value

    def unwrap(self):
        if self.raised:
            raise self.exception
        return self.value
