"""The evidence a query has gathered in its current stage, and each gate of a plan stage checked against it.

Every count is of what happened since the query entered its current stage. Counts come from the shared metric
rollups from the first whole minute of the stage (so they reach back at most METRICS_RETENTION_HOURS, and a
stage's first partial minute is left out). The latency ratio comes from the guard's window of judged comparisons,
those judged since the stage began, where both sides ran side by side on the same data (a shadow stage has no
served candidate calls to time). Open discrepancies come from their records: those are a state, not a count, so
one left unacknowledged from an earlier stage still holds a require_acknowledged gate. Per-cohort numbers are the
`…@cohort=id` counters the publisher adds for the ids a flag's cohort rule names.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.utils import timezone

from rollout.experiments import query_name, sides
from rollout.lifecycle import stages
from rollout.lifecycle.plan import GATES
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, GuardSample
from rollout.reports import OPEN, discrepancy_rate

PER_COHORT = ("comparisons", "discrepancies", "noise")  # counted per cohort id by the publisher

_P95 = f"""
SELECT count(*), percentile_cont(0.95) WITHIN GROUP (ORDER BY control_duration),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY candidate_duration)
FROM (SELECT * FROM {GuardSample._meta.db_table} WHERE flag = %s AND judged_at >= %s ORDER BY id DESC LIMIT %s)
  AS recent
"""


def cohort_counter(name, cohort, cohort_id):
    return f"{name}@{cohort}={cohort_id}"


def cohort_counters(result, state):
    """The per-cohort counter suffixes of one result: its actor's ids that the flag's cohort rule names."""
    if state is None or not state.cohorts:
        return []
    return [
        (cohort, cohort_id)
        for cohort, ids in state.cohorts.items()
        for cohort_id in result.actor.get(cohort, ())
        if cohort_id in ids
    ]


def _rate(part, whole):
    return part / whole if whole else None


@dataclass(frozen=True)
class Check:
    """One gate against the evidence: what it asks, what was seen, met or not, and whether it went backwards."""

    gate: str
    wanted: str
    seen: str
    met: bool
    regressed: bool = False

    def as_dict(self):
        return {
            "gate": self.gate,
            "wanted": self.wanted,
            "seen": self.seen,
            "met": self.met,
            "regressed": self.regressed,
        }


@dataclass(frozen=True)
class Evidence:
    since: datetime
    minutes: float
    comparisons: int = 0
    discrepancies: int = 0
    noise: int = 0
    unacknowledged: int = 0  # open discrepancy records no one has acknowledged
    open: int = 0
    candidate_calls: int = 0
    candidate_errors: int = 0
    fallbacks: int = 0
    latency_sample: int = 0
    control_p95: float | None = None
    candidate_p95: float | None = None
    cohorts: dict = field(default_factory=dict)  # {"site=3": {"comparisons": n, "discrepancies": n, "noise": n}}

    @property
    def discrepancy_rate(self):
        return discrepancy_rate(
            {"comparisons": self.comparisons, "noise": self.noise, "discrepancies": self.discrepancies}
        )

    @property
    def judged(self):
        return self.comparisons - self.noise

    @property
    def p95_ratio(self):
        return self.candidate_p95 / self.control_p95 if self.control_p95 and self.candidate_p95 is not None else None

    @property
    def error_rate(self):
        return _rate(self.candidate_errors, self.candidate_calls)

    @property
    def fallback_rate(self):
        return _rate(self.fallbacks, self.candidate_calls + self.fallbacks)

    def check(self, gates):
        """A Check per gate, in the order GATES lists them."""
        enough = max(gates.get("min_comparisons", 0), 1)  # a rate says nothing on fewer comparisons
        return [getattr(self, f"_{gate}")(gates[gate], enough) for gate in GATES if gate in gates]

    def _wanted(self, gate, value):
        return f"{GATES[gate][3]} {value:g}"

    def _min_comparisons(self, value, enough):
        return Check(
            "min_comparisons", self._wanted("min_comparisons", value), str(self.comparisons), self.comparisons >= value
        )

    def _max_discrepancy_rate(self, value, enough):
        rate = self.discrepancy_rate
        seen = rate is not None and f"{rate:.4g} ({self.discrepancies} of {self.judged}, noise left out)"
        return self._at_most("max_discrepancy_rate", value, rate, self.judged, enough, seen, "no comparison yet")

    def _require_acknowledged(self, value, enough):
        seen = f"{self.unacknowledged} not acknowledged of {self.open} open"
        wanted = GATES["require_acknowledged"][3]
        return Check("require_acknowledged", wanted, seen, not value or self.unacknowledged == 0)

    def _max_p95_ratio(self, value, enough):
        ratio = self.p95_ratio
        seen = ratio is not None and (
            f"{ratio:.3g} ({self.candidate_p95 * 1000:.3g} ms ÷ {self.control_p95 * 1000:.3g} ms, "
            f"last {self.latency_sample} comparisons)"
        )
        return self._at_most("max_p95_ratio", value, ratio, self.latency_sample, enough, seen, "no judged comparison")

    def _max_error_rate(self, value, enough):
        return self._served(
            "max_error_rate", value, self.error_rate, self.candidate_errors, self.candidate_calls, enough
        )

    def _max_fallback_rate(self, value, enough):
        whole = self.candidate_calls + self.fallbacks
        return self._served("max_fallback_rate", value, self.fallback_rate, self.fallbacks, whole, enough)

    def _served(self, gate, value, rate, part, whole, enough):
        # A stage where the candidate serves no one has nothing to hold against it.
        seen = rate is not None and f"{rate:.4g} ({part} of {whole})"
        return self._at_most(gate, value, rate, whole, enough, seen, "no candidate call yet", met_without=True)

    def _at_most(self, gate, limit, rate, sample, enough, seen, nothing, met_without=False):
        """A rate gate: met at or under its limit; regressed when over it on at least `enough` of a sample."""
        met = met_without if rate is None else rate <= limit
        regressed = rate is not None and sample >= enough and rate > limit
        return Check(gate, self._wanted(gate, limit), seen or nothing, met, regressed)

    def _min_minutes(self, value, enough):
        return Check("min_minutes", self._wanted("min_minutes", value), f"{self.minutes:.1f}", self.minutes >= value)

    def as_dict(self):
        return {
            "since": self.since,
            "minutes": round(self.minutes, 2),
            "comparisons": self.comparisons,
            "discrepancies": self.discrepancies,
            "noise": self.noise,
            "discrepancy_rate": self.discrepancy_rate,
            "open_discrepancies": self.open,
            "unacknowledged_discrepancies": self.unacknowledged,
            "candidate_calls": self.candidate_calls,
            "candidate_errors": self.candidate_errors,
            "fallbacks": self.fallbacks,
            "p95_ratio": self.p95_ratio,
            "cohorts": self.cohorts,
        }


def _latency(flag, since):
    with connection.cursor() as cursor:
        cursor.execute(_P95, [flag.name, since, flag.guard_window])
        return cursor.fetchone()


def _by_cohort(counts):
    cohorts = {}
    for key, n in counts.items():
        name, at, who = key.partition("@")
        if at and name in PER_COHORT:
            cohorts.setdefault(who, dict.fromkeys(PER_COHORT, 0))[name] = n
    for numbers in cohorts.values():
        numbers["discrepancy_rate"] = discrepancy_rate(numbers)
    return dict(sorted(cohorts.items()))


def gather(flag, now=None):
    """The Evidence of the flag's query since it entered its current stage."""
    now = now or timezone.now()
    query = query_name(flag.name)
    began = stages.since(flag)
    candidate = sides(query)[1]
    # From the first whole minute of the stage: a rollup minute shared with the stage before never counts for this one.
    totals = metrics.totals_since(query, math.ceil(began.timestamp() / 60))
    served = totals.get(candidate.backend, {})
    records = Discrepancy.objects.filter(OPEN, query=query)
    sample, control_p95, candidate_p95 = _latency(flag, began)
    return Evidence(
        since=began,
        minutes=max((now - began).total_seconds() / 60, 0),
        comparisons=served.get("comparisons", 0),
        discrepancies=served.get("discrepancies", 0),
        noise=served.get("noise", 0),
        unacknowledged=records.filter(status="new").count(),
        open=records.count(),
        candidate_calls=served.get("calls", 0),
        candidate_errors=served.get("errors", 0),
        fallbacks=served.get("fallbacks", 0),
        latency_sample=sample,
        control_p95=control_p95,
        candidate_p95=candidate_p95,
        cohorts=_by_cohort(served),
    )
