"""A rollout plan: the ordered stages of one query, each with the flag settings it means and the evidence (gates)
it needs before the query goes on to the next. Plans are data: exported and applied as JSON, validated here, and
kept on the query's flag (so applying one is a flag write like any other).

    {"query": "bu_list",
     "stages": [{"name": "shadow", "shadow": 100,
                 "gates": {"min_comparisons": 500, "max_discrepancy_rate": 0, "min_minutes": 60}},
                {"name": "two sites", "cohorts": {"site": [3, 4]}, "shadow": 50, "gates": {...}},
                {"name": "10 %", "percent": 10, "shadow": 20, "gates": {...}},
                {"name": "everyone", "everyone": true, "shadow": 5}]}
"""

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal

from rollout.operations import OperationError

# gate → (type, lowest, highest, what it asks, in words)
GATES = {
    "min_comparisons": (int, 0, None, "comparisons ≥"),
    "max_discrepancy_rate": (float, 0, 1, "discrepancy rate ≤"),
    "require_acknowledged": (bool, None, None, "open discrepancies all acknowledged"),
    "max_p95_ratio": (float, 0, None, "candidate p95 ÷ control p95 ≤"),
    "max_error_rate": (float, 0, 1, "candidate error rate ≤"),
    "max_fallback_rate": (float, 0, 1, "fallback rate ≤"),
    "min_minutes": (float, 0, None, "minutes in stage ≥"),
}
STAGE_FIELDS = ("name", "shadow", "cohorts", "percent", "everyone", "gates")
# What `rollout plan QUERY --export` starts from when a query has no plan yet: no cohort stage (cohort ids are
# the host's), gates an operator is expected to tighten or loosen.
STARTING_GATES = {
    "min_comparisons": 200,
    "max_discrepancy_rate": 0.0,
    "require_acknowledged": True,
    "max_p95_ratio": 1.5,
    "max_error_rate": 0.0,
    "max_fallback_rate": 0.0,
    "min_minutes": 60,
}
STARTING_STAGES = (
    {"name": "shadow", "shadow": 100, "gates": STARTING_GATES},
    {"name": "10 %", "percent": 10, "shadow": 50, "gates": STARTING_GATES},
    {"name": "50 %", "percent": 50, "shadow": 20, "gates": STARTING_GATES},
    {"name": "everyone", "everyone": True, "shadow": 5},
)


class PlanError(OperationError):
    """A plan that cannot be applied; the message names the bad field (stages[2].gates.max_p95_ratio: …)."""


@dataclass(frozen=True)
class Stage:
    name: str
    shadow: Decimal = Decimal(0)
    cohorts: dict = field(default_factory=dict)
    percent: Decimal = Decimal(0)
    everyone: bool = False
    gates: dict = field(default_factory=dict)

    def flag_values(self, flag):
        """The flag fields this stage sets. A killed flag stays killed: only `rollout enable` undoes a kill."""
        everyone = True if self.everyone else (False if flag.everyone is False else None)
        return {
            "shadow_percent": self.shadow,
            "cohorts": {name: sorted(ids) for name, ids in self.cohorts.items()},
            "percent": self.percent,
            "everyone": everyone,
        }

    def as_dict(self):
        out = {"name": self.name, "shadow": float(self.shadow)}
        if self.cohorts:
            out["cohorts"] = {name: sorted(ids) for name, ids in self.cohorts.items()}
        if self.percent:
            out["percent"] = float(self.percent)
        if self.everyone:
            out["everyone"] = True
        if self.gates:
            out["gates"] = dict(self.gates)
        return out

    def describe(self):
        who = []
        if self.everyone:
            who.append("everyone")
        who += [f"{name} {sorted(ids)}" for name, ids in sorted(self.cohorts.items())]
        if self.percent:
            who.append(f"{float(self.percent):g} %")
        return f"candidate for {', '.join(who)}" if who else "control for everyone"


@dataclass(frozen=True)
class Plan:
    stages: tuple

    def __len__(self):
        return len(self.stages)

    def as_dict(self):
        return {"stages": [stage.as_dict() for stage in self.stages]}


def _number(value, where, kind, low, high):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))  # NaN, Infinity: Python's json reads them
        or (kind is int and isinstance(value, float) and not value.is_integer())
    ):
        raise PlanError(f"{where}: {json.dumps(value)} is not a {'whole number' if kind is int else 'number'}")
    if value < low or (high is not None and value > high):
        raise PlanError(f"{where}: {value} is not between {low} and {high if high is not None else 'any'}")
    return kind(value)


def _gates(raw, where):
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: is not an object of gates")
    gates = {}
    for name, value in raw.items():
        if name not in GATES:
            raise PlanError(f"{where}.{name}: is not a gate; gates are {', '.join(GATES)}")
        kind, low, high, _ = GATES[name]
        if kind is bool:
            if not isinstance(value, bool):
                raise PlanError(f"{where}.{name}: {json.dumps(value)} is not true or false")
            gates[name] = value
        else:
            gates[name] = _number(value, f"{where}.{name}", kind, low, high)
    return gates


def _cohorts(raw, where):
    from rollout.flags.writes import check_cohort_ids

    if not isinstance(raw, dict):
        raise PlanError(f'{where}: is not an object of cohort ids, e.g. {{"site": [3, 4]}}')
    cohorts = {}
    for name, ids in raw.items():
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise PlanError(f"{where}.{name}: {json.dumps(ids)} is not a list of whole-number ids")
        if ids:
            cohorts[name] = frozenset(ids)
    try:
        check_cohort_ids(cohorts)
    except OperationError as exc:
        raise PlanError(f"{where}: {exc}") from None
    return cohorts


def _stage(raw, where):
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: is not an object")
    unknown = sorted(set(raw) - set(STAGE_FIELDS))
    if unknown:
        raise PlanError(f"{where}.{unknown[0]}: is not a stage field; fields are {', '.join(STAGE_FIELDS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PlanError(f"{where}.name: a stage needs a name")
    everyone = raw.get("everyone", False)
    if not isinstance(everyone, bool):
        raise PlanError(f"{where}.everyone: {json.dumps(everyone)} is not true or false")
    percent = _number(raw.get("percent", 0), f"{where}.percent", float, 0, 99.9)
    stage = Stage(
        name=name.strip(),
        shadow=Decimal(str(_number(raw.get("shadow", 0), f"{where}.shadow", float, 0, 100))),
        cohorts=_cohorts(raw.get("cohorts", {}), f"{where}.cohorts"),
        percent=Decimal(str(percent)).quantize(Decimal("0.1")),
        everyone=everyone,
        gates=_gates(raw.get("gates", {}), f"{where}.gates"),
    )
    if everyone and (stage.cohorts or stage.percent):
        raise PlanError(f"{where}.everyone: a stage for everyone has no cohorts or percent besides")
    return stage


def parse(raw):
    """A Plan from its JSON value ({"stages": [...]}, "query" allowed); PlanError names the first bad field."""
    if not isinstance(raw, dict):
        raise PlanError('plan: is not a JSON object with "stages"')
    unknown = sorted(set(raw) - {"query", "stages"})
    if unknown:
        raise PlanError(f"{unknown[0]}: is not a plan field; fields are query, stages")
    stages = raw.get("stages")
    if not isinstance(stages, list) or not stages:
        raise PlanError("stages: a plan needs a list of at least one stage")
    parsed = tuple(_stage(stage, f"stages[{i}]") for i, stage in enumerate(stages))
    names = [stage.name for stage in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise PlanError(f"stages[{i}].name: {name!r} is the name of an earlier stage")
    return Plan(parsed)


def of(flag):
    """The flag's Plan, or None when it has none."""
    return parse(flag.plan) if flag.plan else None


def starting_plan():
    return parse({"stages": list(STARTING_STAGES)})


def put(flag, the_plan):
    """Give the (locked) flag this plan; a started plan keeps its place by stage name. Returns the fields set."""
    names = [stage.name for stage in the_plan.stages]
    if flag.plan_stage is not None and flag.plan:
        current = parse(flag.plan).stages[flag.plan_stage].name
        if current not in names:
            raise PlanError(
                f"stages: the flag is at stage {current!r}, which this plan does not have; keep a stage of that name"
            )
        flag.plan_stage = names.index(current)
    elif not the_plan.stages:
        flag.plan_stage = None
    flag.plan = the_plan.as_dict() if the_plan.stages else {}
    return ["plan", "plan_stage"]
