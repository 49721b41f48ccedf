"""`manage.py rollout functions`: every function of the database, which are adopted, their lifecycle stage and
what serves whom, their calls (pg_stat_user_functions), the functions retired (dropped, listed with when), and
the registered queries whose function is missing.

An experiment says which function is its control through the optional `control_function` attribute.
"""

from django.db import DEFAULT_DB_ALIAS

from rollout import reports
from rollout.experiments import flag_name, registry
from rollout.lifecycle import readiness, stages
from rollout.models import QueryFlag
from rollout.postgres import catalog

COLUMNS = ("function", "returns", "volatility", "writes", "query", "stage", "serving", "calls")


def _adopted(using, flags):
    """({function oid: query name}, [registered queries whose function is missing, with why], [retired queries])."""
    by_oid, missing, retired = {}, [], []
    for name in registry().names():
        experiment = registry().get(name)
        if not hasattr(type(experiment), "control_function"):
            continue
        flag = flags.get(flag_name(name))
        if flag is not None and flag.retired_at is not None:
            retired.append(name)
            continue
        try:
            by_oid[catalog.find(experiment.control_function, using).oid] = name
        except catalog.FunctionNotFound as exc:
            wanted = getattr(experiment, "function_name", None) or name
            missing.append({"query": name, "function": wanted, "problem": str(exc)})
    return by_oid, missing, retired


def _returns(function):
    if function.shape == catalog.TABLE and function.columns:
        return f"TABLE ({len(function.columns)} columns)"
    return function.result_sql


def _retired(query, flag):
    """The row of a retired query: its function is gone from the catalog, so the row says what it was and when."""
    return {
        "function": flag.retired_from.get("function") or readiness.control_function(query),
        "returns": "(dropped)",
        "volatility": "",
        "writes": "",
        "query": query,
        "stage": stages.RETIRED,
        "serving": reports.serving(flag),
        "calls": None,
        "retired_at": flag.retired_at,
    }


def inventory(using=DEFAULT_DB_ALIAS):
    flags = {f.name: f for f in QueryFlag.objects.prefetch_related("users", "groups")}
    adopted, missing, retired = _adopted(using, flags)
    calls, tracking = catalog.call_counts(using)
    rows = []
    for function in catalog.functions(using):
        query = adopted.get(function.oid, "")
        flag = flags.get(flag_name(query)) if query else None
        rows.append(
            {
                "function": function.signature,
                "returns": _returns(function),
                "volatility": function.volatility,
                "writes": "may write" if catalog.writes(function, using) else "reads only",
                "query": query,
                "stage": stages.stage(flag) if flag else "",
                "serving": (reports.serving(flag) + f", shadow {float(flag.shadow_percent):g} %") if flag else "",
                "calls": calls.get(function.oid) if tracking != "none" else None,
                "retired_at": None,
            }
        )
    rows += [_retired(query, flags[flag_name(query)]) for query in retired]
    return {"functions": rows, "missing": missing, "track_functions": tracking}


def text(found):
    shown = [
        {**row, "stage": f"retired {row['retired_at']:%Y-%m-%d %H:%M} UTC"} if row["retired_at"] else row
        for row in found["functions"]
    ]
    lines = [reports.table(shown, COLUMNS)] if shown else ["no functions"]
    if found["track_functions"] == "none":
        lines.append(
            "calls: not counted (track_functions is 'none'; ALTER SYSTEM SET track_functions = 'pl' and reload)"
        )
    lines += [f"missing: query {m['query']}: {m['problem']}" for m in found["missing"]]
    return "\n".join(lines)
