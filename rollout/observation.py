"""What one backend did for one call: its value or its exception, and how long it took."""

import time
from dataclasses import dataclass


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

    @property
    def error_text(self):
        if not self.raised:
            return ""
        if isinstance(self.exception, ReportedError):
            return str(self.exception)
        return f"{type(self.exception).__name__}: {self.exception}"

    def unwrap(self):
        if self.raised:
            raise self.exception
        return self.value

    def as_payload(self, infrastructure, max_size):
        """A JSON-able form for a comparison worker; answers larger than max_size (len) are omitted."""
        payload = {"backend": self.backend, "duration": self.duration}
        if self.raised:
            error = ReportedError.of(self.exception, infrastructure)
            payload["error"] = {"kind": error.kind, "message": str(error), "infrastructure": error.infrastructure}
        elif hasattr(self.value, "__len__") and len(self.value) > max_size:
            payload["omitted"] = True
        else:
            payload["value"] = self.value
        return payload

    @classmethod
    def from_payload(cls, payload):
        error = payload.get("error")
        return cls(
            payload["backend"],
            value=payload.get("value"),
            exception=ReportedError(**error) if error else None,
            duration=payload["duration"],
            value_omitted=payload.get("omitted", False),
        )
