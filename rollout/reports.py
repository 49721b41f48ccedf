"""Read-side views of the rollout for the CLI, the admin and the API: status, history, replay, purge."""

from datetime import timedelta

from django.utils import timezone

from rollout.experiments import flag_name, get_experiment, registry
from rollout.metrics import metrics
from rollout.models import Discrepancy, FlagChange, QueryFlag

STATUS_COLUMNS = ("query", "serving", "percent", "shadow", "calls", "discrepancy_rate", "guard")
HISTORY_COLUMNS = ("when", "flag", "by", "changes")


def serving(flag):
    """What serves whom, in one line."""
    if flag.everyone is False:
        return "control for everyone" + (" (guard tripped)" if flag.guard_tripped_at else " (killed)")
    if flag.everyone:
        return "candidate for everyone"
    rules = [
        f"{field} {sorted(getattr(flag, field))}"
        for field in ("people", "people_groups", "sites", "clients")
        if getattr(flag, field)
    ]
    if flag.percent:
        rules.append(f"{flag.percent:g}% by {flag.percent_key}")
    if flag.staff or flag.superusers or flag.authenticated:
        rules.append("waffle user rules")
    return ("candidate for " + "; ".join(rules)) if rules else "control (no rule)"


def flag_summary(flag):
    return {
        "flag": flag.name,
        "serving": serving(flag),
        "percent": float(flag.percent or 0),
        "percent_key": flag.percent_key,
        "shadow": float(flag.shadow_percent),
        "guard": f"tripped {flag.guard_tripped_at:%Y-%m-%d %H:%M}: {flag.guard_reason}"
        if flag.guard_tripped_at
        else "armed",
    }


def status():
    flags = {f.name: f for f in QueryFlag.objects.all()}
    numbers = metrics.snapshot()
    rows = []
    for query in registry().names():
        candidate = get_experiment(query).candidate
        flag = flags.get(flag_name(query))
        calls = sum(row["calls"] for (q, _), row in numbers.items() if q == query)
        shadow = numbers.get((query, candidate), {})
        compared = shadow.get("comparisons", 0) - shadow.get("noise", 0)
        rate = shadow.get("discrepancies", 0) / compared if compared > 0 else None
        if flag is None:
            rows.append(
                {
                    "query": query,
                    "serving": "control (missing flag)",
                    "percent": 0,
                    "shadow": 0,
                    "calls": calls,
                    "discrepancy_rate": rate,
                    "guard": "-",
                }
            )
            continue
        summary = flag_summary(flag)
        rows.append(
            {
                "query": query,
                "serving": summary["serving"],
                "percent": summary["percent"],
                "shadow": summary["shadow"],
                "calls": calls,
                "discrepancy_rate": rate,
                "guard": summary["guard"],
            }
        )
    return rows


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows, columns):
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def history(query=None, limit=50):
    changes = FlagChange.objects.select_related("user")
    if query:
        changes = changes.filter(flag_name=flag_name(query))
    return [
        {
            "when": c.changed_at.strftime("%Y-%m-%d %H:%M:%S"),
            "flag": c.flag_name,
            "by": c.user.get_username() if c.user else c.source,
            "changes": "; ".join(f"{k}: {v[0]!r} → {v[1]!r}" for k, v in c.changes.items())
            + (f" ({c.reason})" if c.reason else ""),
        }
        for c in changes[:limit]
    ]


def replay(discrepancy_id):
    """Run both backends again, now, with the recorded parameters."""
    from rollout.comparison import observe_both
    from rollout.operations import OperationError
    from rollout.recorder import bounded_diff

    discrepancy = Discrepancy.objects.filter(pk=discrepancy_id).first()
    example = discrepancy.latest() if discrepancy else None
    if example is None:
        raise OperationError(f"id: no discrepancy {discrepancy_id}")
    try:
        experiment = get_experiment(discrepancy.query)
    except LookupError:
        raise OperationError(
            f"id: discrepancy {discrepancy_id} is of {discrepancy.query!r}, which is no longer registered"
        ) from None
    params = experiment.clean(example.params, parse=True)
    control, candidate = observe_both(experiment, params)
    difference = experiment.compare(control.outcome, candidate.outcome)
    text = f"discrepancy {discrepancy_id} ({discrepancy.query}, {discrepancy.kind}) with {example.params}:\n" + (
        "the control and the candidate now agree"
        if difference.equal
        else f"they still differ: {bounded_diff(difference)}"
    )
    return {
        "id": discrepancy_id,
        "agree": difference.equal,
        "diff": None if difference.equal else bounded_diff(difference),
        "text": text,
    }


def purge(older_than_days):
    cutoff = timezone.now() - timedelta(days=older_than_days)
    _, per_model = Discrepancy.objects.filter(last_seen__lt=cutoff).delete()
    return per_model.get(Discrepancy._meta.label, 0)
