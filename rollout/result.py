"""The immutable outcome of one comparison (after GitHub Scientist's Result): what both sides did and what it means.

Kinds, by what happens to them:
- matched, ignored (an accepted difference): counted, fed to the guard as healthy;
- mismatch, candidate_error: recorded as discrepancies and fed to the guard — the candidate is to blame;
- control_error, different_errors, rescued: recorded, never fed to the guard — the control failed, a legacy incident;
- stale_cache: recorded (the cache served an answer the data no longer gives), not fed to the guard;
- noise (the data moved between serving and comparing) and infrastructure (a connection lost, a shutdown,
  a serialization failure or a timeout on either side, after one retry): counted, never recorded or judged.
"""

from dataclasses import dataclass, field

MATCHED = "matched"
IGNORED = "ignored"
MISMATCH = "mismatch"
CANDIDATE_ERROR = "candidate_error"
CONTROL_ERROR = "control_error"
DIFFERENT_ERRORS = "different_errors"
RESCUED = "rescued"
STALE_CACHE = "stale_cache"
NOISE = "noise"
INFRASTRUCTURE = "infrastructure"

RECORDED = frozenset({MISMATCH, CANDIDATE_ERROR, CONTROL_ERROR, DIFFERENT_ERRORS, RESCUED, STALE_CACHE})
JUDGED = frozenset({MATCHED, IGNORED, MISMATCH, CANDIDATE_ERROR})  # what the guard sees
CONTROL_FAILED = frozenset({CONTROL_ERROR, DIFFERENT_ERRORS, RESCUED})


@dataclass(frozen=True)
class Result:
    comparison_id: str
    query: str
    flag: str
    kind: str
    served_backend: str
    control: object = None  # Observation, or None when the comparison never ran (infrastructure)
    candidate: object = None
    difference: object = None
    ignore_reason: str | None = None
    params: dict = field(default_factory=dict)
    actor: dict = field(default_factory=dict)
    candidate_backend: str = ""

    @property
    def matched(self):
        return self.kind == MATCHED

    @property
    def ignored(self):
        return self.kind == IGNORED

    @property
    def mismatched(self):
        return self.kind in RECORDED

    @property
    def judged(self):
        """Whether the guard judges the candidate by this result."""
        return self.kind in JUDGED

    @property
    def discrepancy(self):
        return self.kind in (MISMATCH, CANDIDATE_ERROR)
