"""A toy experiment with no legacy domain: what rollout needs of any experiment, and nothing more.

Its control doubles `n`; its candidate doubles it too, except for the values in
TOY_WRONG (an environment variable, so worker processes agree), where it is
off by one. TOY_DELAY_SECONDS slows both sides down. Processes select it with
ROLLOUT_REGISTRY=tests.toy.REGISTRY.
"""

import os
import time
from dataclasses import dataclass

from django.db import transaction


class ToyInvalidParams(ValueError):
    kind = "invalid_params"

    def __init__(self, param, problem):
        super().__init__(f"parameter {param!r}: {problem}")
        self.param = param


@dataclass(frozen=True)
class ToyDifference:
    """The contract asks only `equal`, `shape` and JSON details of a difference."""

    value: tuple | None = None
    errors: tuple | None = None

    @property
    def equal(self):
        return self.value is None and self.errors is None

    @property
    def shape(self):
        return f"errors:{self.errors}" if self.errors else "value"

    def as_dict(self):
        return {"value": {"control": self.value[0], "candidate": self.value[1]} if self.value else None}


class ToyNegative(Exception):
    """The toy's own error: rollout has never heard of its kind, the toy says what it means at the API."""

    kind = "negative"


def _kind(outcome):
    return getattr(outcome, "kind", None) or type(outcome).__name__


class ToyExperiment:
    control, candidate = "old", "new"
    control_label, candidate_label = "old code", "new code"

    def __init__(self, name):
        self.name = name

    def clean(self, params, parse=False):
        if set(params) != {"n"}:
            raise ToyInvalidParams("n", "the only parameter, and required")
        try:
            return {"n": int(params["n"]) if parse else params["n"]}
        except (TypeError, ValueError):
            raise ToyInvalidParams("n", "not an integer") from None

    def run(self, backend, params):
        time.sleep(float(os.environ.get("TOY_DELAY_SECONDS", "0")))
        n = params["n"]
        if n < 0:
            raise ToyNegative(f"n is {n}: the toy doubles only natural numbers")
        wrong = {int(v) for v in os.environ.get("TOY_WRONG", "").split(",") if v}
        return n * 2 + (1 if backend == self.candidate and n in wrong else 0)

    def run_many(self, backend, name, values, params):
        return {value: self.run(backend, {**params, name: value}) for value in values}

    def run_cached(self, backend, params):
        return self.run(backend, params), False

    def cached_answer(self, backend, params):
        return False, None

    def compare(self, control, candidate):
        failed = isinstance(control, BaseException), isinstance(candidate, BaseException)
        if any(failed):
            kinds = (_kind(control) if failed[0] else None, _kind(candidate) if failed[1] else None)
            return ToyDifference() if kinds[0] == kinds[1] else ToyDifference(errors=kinds)
        return ToyDifference() if control == candidate else ToyDifference(value=(control, candidate))

    def ignored(self, control, candidate, difference):
        return None

    def infrastructure_failure(self, exception):
        return False

    def allowed_for(self, client_id, params):
        return True

    def redact(self, client_id, params, answer):
        return answer, 0

    def status_for(self, exception):
        return (422, exception.kind) if isinstance(exception, ToyNegative) else None


class ToyRegistry:
    def __init__(self, *experiments):
        self._experiments = {e.name: e for e in experiments}

    def get(self, name):
        try:
            return self._experiments[name]
        except KeyError:
            raise LookupError(f"unknown experiment {name!r}") from None

    def names(self):
        return list(self._experiments)

    def snapshot(self, using="default"):
        return transaction.atomic(using=using)


REGISTRY = ToyRegistry(ToyExperiment("toy"))
