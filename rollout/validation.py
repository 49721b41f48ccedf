"""Validation: both sides of a query over many parameter sets, compared case by case in one snapshot that
never commits (rollout.shadow.judge's), so a function that writes leaves nothing behind."""

import random
import time
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS

from rollout.equality import error_kind
from rollout.experiments import registry as configured
from rollout.shadow.judge import sides, snapshot


@dataclass
class QueryReport:
    query: str
    cases: int = 0
    equal: int = 0
    different: int = 0
    errors: int = 0  # cases where both sides failed alike (equal, but worth knowing)
    seconds: float = 0.0
    examples: dict = field(default_factory=dict)  # kind of difference → one minimal example

    def as_dict(self):
        return vars(self).copy()


def _jsonable(value):
    if isinstance(value, BaseException):
        return {"error": error_kind(value), "message": str(value)}
    return value


def sample_cases(query, limit=None, seed=0, registry=None):
    cases = list((registry or configured()).get(query).cases())
    if limit is not None and len(cases) > limit:
        cases = random.Random(seed).sample(cases, limit)
    return cases


def validate_query(query, cases, registry=None, on_case=None):
    definition = (registry or configured()).get(query)
    report = QueryReport(query)
    started = time.perf_counter()
    with snapshot(DEFAULT_DB_ALIAS):
        for params in cases:
            control, candidate = (
                side.outcome for side in sides(definition, definition.clean(params), DEFAULT_DB_ALIAS)
            )
            difference = definition.compare(control, candidate)
            report.cases += 1
            if difference.equal:
                report.equal += 1
                report.errors += isinstance(control, BaseException)
            else:
                report.different += 1
                kind = difference.shape
                example = {
                    "params": params,
                    "difference": difference.as_dict(),
                    "control": _jsonable(control),
                    "candidate": _jsonable(candidate),
                }
                size = len(repr(example))
                if kind not in report.examples or size < report.examples[kind][0]:
                    report.examples[kind] = (size, example)
            if on_case:
                on_case()
    report.seconds = time.perf_counter() - started
    report.examples = {kind: example for kind, (_, example) in report.examples.items()}
    return report
