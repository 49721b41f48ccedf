"""The immutable outcome of one comparison (after GitHub Scientist's Result), and the one list of its kinds.

Each kind says, in one row of KINDS, what happens to a result of that kind:
whether it is recorded as a discrepancy, whether the guard judges the
candidate by it (and counts it against the candidate), and which metrics it
adds to. Discrepancy.kind, the counters of publish() and the guard's window all
read this table.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # what an operator reads
    recorded: bool  # written as a discrepancy, with what it takes to reproduce it
    judged: bool  # enters the guard's window: it says something about the candidate
    against_candidate: bool  # in that window, counts as the candidate's discrepancy
    counters: tuple  # the metrics it adds one to


KINDS = (
    Kind("matched", "matched", False, True, False, ("comparisons", "matches")),
    Kind("ignored", "accepted difference", False, True, False, ("comparisons", "matches")),
    Kind("mismatch", "value mismatch", True, True, True, ("comparisons", "discrepancies")),
    Kind("candidate_error", "candidate error", True, True, True, ("comparisons", "discrepancies")),
    # The control failed: a legacy incident, recorded, never the candidate's fault.
    Kind("control_error", "control error", True, False, False, ("comparisons", "control_errors")),
    Kind("different_errors", "different errors", True, False, False, ("comparisons", "control_errors")),
    # The cache served an answer the data no longer gives: recorded, but the candidate's code is not to blame.
    Kind("stale_cache", "stale cache", True, False, False, ("comparisons", "discrepancies")),
    # The control raised while serving and the candidate's answer was served instead.
    Kind("rescued", "control error, candidate served", True, False, False, ("control_errors",)),
    # The data moved between serving and comparing: counted, never recorded or judged.
    Kind("noise", "noise", False, False, False, ("comparisons", "noise")),
    # A connection lost, a shutdown, a serialization failure or a timeout on either side, after one retry.
    Kind("infrastructure", "infrastructure", False, False, False, ("infrastructure",)),
    # Sampled before the query was retired, judged after its function was dropped: nothing left to compare
    # with. A drop (calls = compared + dropped), neither a control error nor evidence against a migration back.
    Kind("retired", "function retired first", False, False, False, ("drops",)),
)
BY_NAME = {kind.name: kind for kind in KINDS}
RECORDED_CHOICES = [(kind.name, kind.label) for kind in KINDS if kind.recorded]  # Discrepancy.kind's choices

(
    MATCHED,
    IGNORED,
    MISMATCH,
    CANDIDATE_ERROR,
    CONTROL_ERROR,
    DIFFERENT_ERRORS,
    STALE_CACHE,
    RESCUED,
    NOISE,
    INFRA,
    RETIRED,
) = (kind.name for kind in KINDS)


@dataclass(frozen=True)
class Result:
    comparison_id: str
    query: str
    flag: str
    kind: str  # the name of one of KINDS
    served_backend: str
    control: object = None  # Observation, or None when the comparison never ran (infrastructure)
    candidate: object = None
    difference: object = None
    ignore_reason: str | None = None
    params: dict = field(default_factory=dict)
    actor: dict = field(default_factory=dict)
    candidate_backend: str = ""
    cost: float = 0.0  # seconds the comparison spent running both sides (the shadow budget's spending)

    @property
    def recorded(self):
        return BY_NAME[self.kind].recorded

    @property
    def judged(self):
        """Whether the guard judges the candidate by this result."""
        return BY_NAME[self.kind].judged

    @property
    def against_candidate(self):
        return BY_NAME[self.kind].against_candidate

    @property
    def counters(self):
        return BY_NAME[self.kind].counters
