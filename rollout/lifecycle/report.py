"""`rollout plan QUERY`: the plan, where the query stands in it, the evidence against each gate, time in stage."""

from django.utils import timezone

from rollout.lifecycle import evidence, plan, stages
from rollout.operations import flags_for


def plan_report(query, now=None):
    now = now or timezone.now()
    [flag] = flags_for([query])
    the_plan = plan.of(flag)
    at = flag.plan_stage
    report = {
        "query": query,
        "lifecycle": stages.summary(flag, now),
        "plan": the_plan.as_dict() if the_plan else None,
        "stage_index": at,
        "stage": the_plan.stages[at].name if the_plan and at is not None else None,
        "paused": flag.plan_paused,
        "paused_reason": flag.plan_paused_reason,
        "guard_tripped": flag.guard_tripped_at is not None,
        "checks": [],
        "evidence": None,
    }
    if the_plan and at is not None:
        found = evidence.gather(flag, now)
        report["evidence"] = found.as_dict()
        if at + 1 < len(the_plan):
            report["checks"] = [c.as_dict() for c in found.check(the_plan.stages[at].gates)]
    return report


def _driver(report, the_plan):
    if report["stage_index"] is None:
        return "not started — `rollout plan {q} --start` puts it at its first stage".format(q=report["query"])
    if report["paused"]:
        return f"paused: {report['paused_reason']}"
    if report["stage_index"] + 1 >= len(the_plan):
        return "at its last stage"
    return "the autopilot advances it when every gate is met"


def text(report):
    query = report["query"]
    life = report["lifecycle"]
    lines = [f"{query}: lifecycle stage {life['stage']} for {life['time_in_stage_text']}"]
    if report["plan"] is None:
        lines.append(
            f"no plan: start from `rollout plan {query} --export > plan.json`, edit, `rollout plan --apply plan.json`"
        )
        return "\n".join(lines)
    the_plan = plan.parse(report["plan"])
    lines.append(f"plan: {_driver(report, the_plan)}")
    for i, stage in enumerate(the_plan.stages):
        mark = ">" if i == report["stage_index"] else " "
        lines.append(f" {mark} {i + 1}. {stage.name}: {stage.describe()}, shadow {float(stage.shadow):g} %")
    if report["checks"]:
        lines.append(f"gates to leave {report['stage']!r}:")
        for check in report["checks"]:
            state = "met " if check["met"] else ("BACK" if check["regressed"] else "wait")
            lines.append(f"  [{state}] {check['wanted']}: {check['seen']}")
    found = report["evidence"] or {}
    for cohort, numbers in (found.get("cohorts") or {}).items():
        rate = numbers["discrepancy_rate"]
        lines.append(
            f"  {cohort}: {numbers['comparisons']} comparisons, {numbers['discrepancies']} discrepancies, "
            f"{numbers['noise']} noise (rate {'-' if rate is None else f'{rate:.4g}'})"
        )
    return "\n".join(lines)
