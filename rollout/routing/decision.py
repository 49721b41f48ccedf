from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Decision:
    """Which backend served a call, and why. Logged at debug level; available through last_decision()."""

    query: str
    flag: str
    backend: str
    role: str  # "control" (the function) or "candidate" (the twin)
    rule: str  # the flag rule that decided, e.g. "sites", "percent", "everyone_off", "missing_flag"
    shadow: bool = False
    fell_back: bool = False  # the candidate raised and the control served
    rescued: bool = False  # the control raised and the candidate served
    cache_hit: bool | None = None  # None: not served through the cache

    def with_fallback(self, backend):
        return replace(self, backend=backend, role="control", fell_back=True)
