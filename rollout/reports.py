"""Read-side views of the rollout for the CLI, the admin, the API and the dashboard: status and history.

Nothing here writes or runs a query: replay is in shadow/replay.py, purge in retention.py.
"""

import json
from collections import Counter

from django.db.models import Q

from rollout.experiments import flag_name, get_experiment, registry
from rollout.flags.state import EVERYONE_OFF, PERCENT, RETIRED, FlagState
from rollout.lifecycle import stages
from rollout.metrics.rollups import metrics
from rollout.models import Discrepancy, FlagChange, QueryFlag
from rollout.shadow.budget import budget

STATUS_COLUMNS = ("query", "stage", "in_stage", "serving", "percent", "shadow", "calls", "discrepancy_rate", "guard")
HISTORY_COLUMNS = ("when", "flag", "by", "changes")


def serving(flag):
    """What serves whom, in one line, read off the flag's rule chain (flags.state.PRECEDENCE) in its order.

    Prefetch the flags' users and groups to describe many without two queries each.
    """
    state = FlagState.from_flag(flag)
    rules = state.rules_in_force()
    if not rules:
        return "control (no rule)"
    if rules[0].name == RETIRED:
        return "candidate for everyone (function retired)"
    if rules[0].name == EVERYONE_OFF:
        return "control for everyone" + _why_off(flag)
    segments = []  # [role, [who…]]: consecutive rules that serve the same side read as one
    for rule in rules:
        role = "candidate" if rule.verdict else "control"
        if not segments or segments[-1][0] != role:
            segments.append([role, []])
        segments[-1][1].append(rule.describe(state))
    return "; ".join(f"{role} for {', '.join(who)}" for role, who in segments)


def _why_off(flag):
    if flag.guard_tripped_at:
        return " (guard tripped)"
    if flag.killed_by == "guard":  # cleared, and no one has turned it on or killed it since
        return " (guard cleared; enable to resume)"
    return " (killed)"


def as_json(value):
    """A value as the surfaces show it: text as it is, anything else as JSON — never a Python repr."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def guard_status(flag, brief=False):
    """The guard's state in words: the surfaces (CLI, admin, dashboard) all show this. `brief` leaves the
    reason out (tables show it on hover and on the query's own page)."""
    if flag is None:
        return "-"
    if flag.guard_tripped_at:
        when = f"tripped {flag.guard_tripped_at:%Y-%m-%d %H:%M}"
        return when if brief else f"{when}: {flag.guard_reason}"
    return "armed"


def discrepancy_rate(counts):
    """Discrepancies per comparison, noise left out (a noisy comparison says nothing); None before any."""
    compared = counts.get("comparisons", 0) - counts.get("noise", 0)
    return counts.get("discrepancies", 0) / compared if compared > 0 else None


OPEN = ~Q(status__in=("fixed", "ignored"))


def open_discrepancies():
    """{query: discrepancy records neither fixed nor ignored}."""
    return Counter(Discrepancy.objects.filter(OPEN).values_list("query", flat=True))


def shadow_asked(flag):
    """The shadow percentage the flag asks for; none once retired (no function left to compare with), whatever
    it kept to give back."""
    return 0.0 if flag.retired_at else float(flag.shadow_percent)


def shadow_compared(query, flag):
    """(asked, compared): the shadow percentage the flag asks for and the share the shadow budget compares now."""
    asked = shadow_asked(flag) if flag else 0.0
    return asked, budget.effective_percent(query, asked) if asked else 0.0


def percent_in_force(flag):
    """The flag's percentage when its percent rule decides for someone; None when a rule before it answers for
    everyone (enabled, killed, retired) and the stored percentage is only kept to give back."""
    in_force = PERCENT in {rule.name for rule in FlagState.from_flag(flag).rules_in_force()}
    return float(flag.percent or 0) if in_force else None


def flag_summary(flag):
    life = stages.summary(flag)
    return {
        "flag": flag.name,
        "stage": life["stage"],
        "stage_since": life["stage_since"],
        "in_stage": life["time_in_stage_text"],
        "serving": serving(flag),
        "percent": float(flag.percent or 0),
        "percent_key": flag.percent_key,
        "shadow": shadow_asked(flag),
        "guard": guard_status(flag),
    }


def status():
    budget.refresh()  # the shares compared now, as the dashboard shows them
    flags = {f.name: f for f in QueryFlag.objects.prefetch_related("users", "groups")}
    numbers = metrics.snapshot()
    rows = []
    for query in registry().names():
        candidate = get_experiment(query).candidate
        flag = flags.get(flag_name(query))
        calls = sum(row["calls"] for (q, _), row in numbers.items() if q == query)
        rate = discrepancy_rate(numbers.get((query, candidate), {}))
        if flag is None:
            rows.append(
                {
                    "query": query,
                    **_stage_columns(stages.summary(None)),
                    "serving": "control (missing flag)",
                    "percent": 0,
                    "shadow": 0,
                    "shadow_compared": 0,
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
                "stage": summary["stage"],
                "stage_since": summary["stage_since"],
                "in_stage": summary["in_stage"],
                "serving": summary["serving"],
                "percent": percent_in_force(flag),
                "shadow": summary["shadow"],
                "shadow_compared": shadow_compared(query, flag)[1],
                "calls": calls,
                "discrepancy_rate": rate,
                "guard": summary["guard"],
            }
        )
    return rows


def _stage_columns(life):
    return {"stage": life["stage"], "stage_since": life["stage_since"], "in_stage": life["time_in_stage_text"]}


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def status_table(rows):
    """`rollout status` as text: a shadow share the budget caps reads `asked → compared (budget)`."""
    return table([{**row, "shadow": _shadow_cell(row)} for row in rows], STATUS_COLUMNS)


def _shadow_cell(row):
    asked, compared = row["shadow"], row["shadow_compared"]
    return f"{_cell(asked)} → {compared:.2g} (budget)" if compared < asked else asked


def table(rows, columns):
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    # Padded to line the columns up; the last column needs none (no trailing spaces).
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in [list(columns), *cells])


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
