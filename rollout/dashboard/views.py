"""The rollout dashboard (staff only): an overview row per query, and a page per query with its charts.

Built from the shared metrics (metrics.series) and the flags; it answers the operator's question
"is the rollout healthy?" on one screen, and "what is this query doing?" on the next.
"""

from collections import Counter
from datetime import UTC, datetime

from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse

from rollout.dashboard import charts
from rollout.experiments import flag_name, registry, sides
from rollout.lifecycle import stages
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, QueryFlag
from rollout.reports import OPEN, discrepancy_rate, guard_status, open_discrepancies, serving, shadow_compared
from rollout.shadow.budget import budget

# range → (minutes shown, minutes per point): a long range is drawn in wider steps so it stays readable.
RANGES = {"15m": (15, 1), "1h": (60, 1), "6h": (360, 5), "24h": (1440, 15)}
DEFAULT_RANGE = "1h"
RATES = ("error_rate", "fallback_rate", "discrepancy_rate", "cache_hit_rate")


def _rate(part, whole):
    return part / whole if whole else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def _weighted(pairs):
    """Call-weighted mean of per-minute percentiles: a wide point's latency, from its minutes."""
    pairs = [(v, w or 1) for v, w in pairs if v is not None]
    return sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else None


class QueryNumbers:
    """One query's counters over a range: totals, and points of `step` minutes each for the charts."""

    def __init__(self, query, series, step):
        self.query = query
        self.control, self.candidate = sides(query)
        self.both = (self.control, self.candidate)
        self.minutes = [
            (minute, {s.backend: row.get((query, s.backend), {}) for s in self.both}) for minute, row in series
        ]
        self.step = step

    def total(self, side, name):
        return sum(rows[side.backend].get(name, 0) for _, rows in self.minutes)

    def totals(self, side):
        counts = Counter()
        for _, rows in self.minutes:
            counts.update({k: v for k, v in rows[side.backend].items() if isinstance(v, int)})
        return counts

    def points(self):
        """[(first minute, {backend: (counters, [(p50, calls)], [(p95, calls)])})], `step` minutes per point."""
        result = []
        for start in range(0, len(self.minutes), self.step):
            chunk = self.minutes[start : start + self.step]
            merged = {}
            for side in self.both:
                counts = Counter()
                p50, p95 = [], []
                for _, rows in chunk:
                    row = rows[side.backend]
                    counts.update({k: v for k, v in row.items() if isinstance(v, int)})
                    p50.append((row.get("p50"), row.get("calls", 0)))
                    p95.append((row.get("p95"), row.get("calls", 0)))
                merged[side.backend] = (counts, _weighted(p50), _weighted(p95))
            result.append((chunk[0][0], merged))
        return result

    def latency(self, side, name):
        return _weighted((rows[side.backend].get(name), rows[side.backend].get("calls", 0)) for _, rows in self.minutes)

    def summary(self):
        control, candidate = self.totals(self.control), self.totals(self.candidate)
        calls = control["calls"] + candidate["calls"]
        hits, misses = candidate["cache_hits"], candidate["cache_misses"]
        return {
            "control_calls": control["calls"],
            "candidate_calls": candidate["calls"],
            "calls": calls,
            "calls_per_minute": _rate(calls, len(self.minutes)),
            "error_rate": _rate(control["errors"] + candidate["errors"], calls),
            # Of the calls the candidate was asked to serve, the share the control had to take over.
            "fallback_rate": _rate(candidate["fallbacks"], candidate["calls"] + candidate["fallbacks"]),
            "comparisons": candidate["comparisons"],
            "discrepancy_rate": discrepancy_rate(candidate),
            "noise": candidate["noise"],
            "drops": control["drops"] + candidate["drops"],
            "cache_hit_rate": _rate(hits, hits + misses),
            "p50_ratio": _ratio(self.latency(self.candidate, "p50"), self.latency(self.control, "p50")),
        }


def percent(value):
    """A rate for people: '–' before there is anything to divide, 3 significant digits after."""
    return "–" if value is None else f"{value * 100:.3g} %"


def times(value):
    return "–" if value is None else f"{value:.2f}×"


def _shown(summary):
    """The summary's rates and ratio as text, and whether each is a warning sign."""
    return {
        **{f"{name}_text": percent(summary[name]) for name in RATES},
        "p50_ratio_text": times(summary["p50_ratio"]),
        "warn": {name for name in ("error_rate", "fallback_rate", "discrepancy_rate") if summary[name]}
        | ({"drops"} if summary["drops"] else set()),
    }


def _range(request):
    key = request.GET.get("range", DEFAULT_RANGE)
    return key if key in RANGES else DEFAULT_RANGE


def _page(request, title, template, **context):
    window = _range(request)
    context = {
        **admin.site.each_context(request),
        "title": title,
        "ranges": list(RANGES),
        "current": window,
        **context,
    }
    return TemplateResponse(request, template, context)


def _shadow(query, flag):
    """What the flag asks of shadow mode and, when the shadow budget caps it, what is compared instead: a brief
    line under the serving rule (a longer one wrapped the rows past 1400×900) and the sentence on hover."""
    asked, effective = shadow_compared(query, flag)
    if not asked:
        return {"shadow": "", "shadow_why": ""}
    if effective < asked:
        return {
            "shadow": f"shadow {asked:g} % → {effective:.2g} % (budget)",
            "shadow_why": f"shadow {asked:g} % asked, {effective:.2g} % compared: over the shadow budget",
        }
    return {"shadow": f"shadow {asked:g} %", "shadow_why": ""}


def _flag_facts(query, flag):
    life = stages.summary(flag)
    return {
        **_shadow(query, flag),
        "stage": life["stage"],
        "in_stage": life["time_in_stage_text"],
        "serving": serving(flag) if flag else "control (missing flag)",
        "guard": guard_status(flag),
        "guard_brief": guard_status(flag, brief=True),
        "tripped": bool(flag and flag.guard_tripped_at),
    }


def overview(request):
    minutes, step = RANGES[_range(request)]
    budget.refresh()
    series = metrics.series(minutes)
    flags = {f.name: f for f in QueryFlag.objects.prefetch_related("users", "groups")}
    open_counts = open_discrepancies()
    rows = []
    for query in registry().names():
        numbers = QueryNumbers(query, series, step)
        summary = numbers.summary()
        per_point = [
            sum(counts["calls"] for counts, _, _ in merged.values()) / min(step, minutes)
            for _, merged in numbers.points()
        ]
        rows.append(
            {
                "query": query,
                **_flag_facts(query, flags.get(flag_name(query))),
                **summary,
                **_shown(summary),
                "share": charts.share(
                    summary["control_calls"], summary["candidate_calls"], numbers.control.label, numbers.candidate.label
                ),
                "sparkline": charts.sparkline(per_point),
                "open": open_counts.get(query, 0),
            }
        )
    unregistered = sorted(set(open_counts) - set(registry().names()))
    return _page(
        request,
        "Rollout dashboard",
        "admin/rollout/dashboard.html",
        rows=rows,
        unregistered=[(q, open_counts[q]) for q in unregistered],
    )


def _x_labels(points):
    if not points:
        return ()
    clock = [datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M") for minute, _ in points]
    return clock[0], clock[len(clock) // 2], clock[-1] + " UTC"


def query_page(request, query):
    if query not in registry().names():
        raise Http404(f"no query {query!r} is registered")
    window = _range(request)
    minutes, step = RANGES[window]
    numbers = QueryNumbers(query, metrics.series(minutes), step)
    points = numbers.points()
    control, candidate = numbers.control, numbers.candidate
    colors = {control.label: charts.CONTROL_COLOR, candidate.label: charts.CANDIDATE_COLOR}
    x_labels = _x_labels(points)

    def per_minute(side, name):
        return [merged[side.backend][0][name] / step for _, merged in points]

    def ms(side, index):
        return [
            None if merged[side.backend][index] is None else merged[side.backend][index] * 1000 for _, merged in points
        ]

    calls_chart = charts.lines(
        {control.label: per_minute(control, "calls"), candidate.label: per_minute(candidate, "calls")},
        x_labels,
        colors=colors,
    )
    discrepancy_chart = charts.lines(
        {
            "discrepancy rate": [discrepancy_rate(merged[candidate.backend][0]) for _, merged in points],
            "noise share": [
                _rate(merged[candidate.backend][0]["noise"], merged[candidate.backend][0]["comparisons"])
                for _, merged in points
            ],
        },
        x_labels,
        colors={"discrepancy rate": "#d62728", "noise share": "#ff7f0e"},
    )
    latency_chart = charts.lines(
        {
            f"{control.label} p50": ms(control, 1),
            f"{control.label} p95": ms(control, 2),
            f"{candidate.label} p50": ms(candidate, 1),
            f"{candidate.label} p95": ms(candidate, 2),
        },
        x_labels,
        unit=" ms",
        colors={
            f"{control.label} p50": charts.CONTROL_COLOR,
            f"{control.label} p95": "#9ecae1",
            f"{candidate.label} p50": charts.CANDIDATE_COLOR,
            f"{candidate.label} p95": "#a1d99b",
        },
    )
    flag = QueryFlag.objects.prefetch_related("users", "groups").filter(name=flag_name(query)).first()
    discrepancies = Discrepancy.objects.filter(OPEN, query=query)[:20]
    return _page(
        request,
        f"Rollout: {query}",
        "admin/rollout/dashboard_query.html",
        query=query,
        flag=flag,
        **_flag_facts(query, flag),
        summary={**numbers.summary(), **_shown(numbers.summary())},
        step=step,
        control=control,
        candidate=candidate,
        charts=[
            ("Calls per minute, by the backend that served", calls_chart),
            ("Discrepancy rate, and the share of comparisons that were noise", discrepancy_chart),
            ("Latency p50 / p95 per backend", latency_chart),
        ],
        discrepancies=discrepancies,
    )
