"""The rollout dashboard: an admin page, staff only, built from the shared metrics."""

from django.contrib import admin
from django.template.response import TemplateResponse

from rollout import charts
from rollout.experiments import flag_name, get_experiment, registry
from rollout.metrics import metrics
from rollout.models import Discrepancy, QueryFlag
from rollout.reports import serving

RANGES = {"15m": 15, "1h": 60, "6h": 360, "24h": 1440}


def _rate(part, whole):
    return part / whole if whole else None


def _query_panel(query, series, flag, open_discrepancies):
    experiment = get_experiment(query)
    control, candidate = experiment.control, experiment.candidate

    def total(backend, name):
        return sum(row.get((query, backend), {}).get(name, 0) for _, row in series)

    def per_minute(backend, name):
        return [row.get((query, backend), {}).get(name) for _, row in series]

    calls = {b: total(b, "calls") for b in (control, candidate)}
    compared = total(candidate, "comparisons") - total(candidate, "noise")
    hits, misses = total(candidate, "cache_hits"), total(candidate, "cache_misses")
    discrepancy_rate = [
        _rate(
            row.get((query, candidate), {}).get("discrepancies", 0),
            row.get((query, candidate), {}).get("comparisons", 0),
        )
        for _, row in series
    ]
    ms = [
        [None if v is None else v * 1000 for v in per_minute(b, q)]
        for b in (control, candidate)
        for q in ("p50", "p95")
    ]
    return {
        "query": query,
        "serving": serving(flag) if flag else "control (missing flag)",
        "guard": (f"tripped: {flag.guard_reason}" if flag.guard_tripped_at else "armed") if flag else "-",
        "share": charts.share(calls[control], calls[candidate]),
        "numbers": {
            "calls": sum(calls.values()),
            "error rate": _rate(total(control, "errors") + total(candidate, "errors"), sum(calls.values())),
            "fallback rate": _rate(total(candidate, "fallbacks"), calls[candidate]),
            "comparisons": total(candidate, "comparisons"),
            "discrepancy rate": _rate(total(candidate, "discrepancies"), compared),
            "noise": total(candidate, "noise"),
            "drops": total(candidate, "drops"),
            "cache hit rate": _rate(hits, hits + misses),
            "open discrepancies": open_discrepancies,
        },
        "calls_chart": charts.lines({control: per_minute(control, "calls"), candidate: per_minute(candidate, "calls")}),
        "discrepancy_chart": charts.lines(
            {"discrepancy rate": discrepancy_rate, "noise": per_minute(candidate, "noise")}
        ),
        "latency_chart": charts.lines(
            {f"{control} p50": ms[0], f"{control} p95": ms[1], f"{candidate} p50": ms[2], f"{candidate} p95": ms[3]},
            unit=" ms",
        ),
    }


def view(request):
    window = request.GET.get("range", "1h")
    minutes = RANGES.get(window, 60)
    series = metrics.series(minutes)
    flags = {f.name: f for f in QueryFlag.objects.prefetch_related("users", "groups")}
    open_counts = {}
    for query in Discrepancy.objects.exclude(status__in=("fixed", "ignored")).values_list("query", flat=True):
        open_counts[query] = open_counts.get(query, 0) + 1
    panels = [_query_panel(q, series, flags.get(flag_name(q)), open_counts.get(q, 0)) for q in registry().names()]
    context = {
        **admin.site.each_context(request),
        "title": "Rollout dashboard",
        "panels": panels,
        "ranges": list(RANGES),
        "current": window if window in RANGES else "1h",
    }
    return TemplateResponse(request, "admin/rollout/dashboard.html", context)
