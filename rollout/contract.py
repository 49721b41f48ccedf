"""What rollout asks of the experiments it routes — exactly what it calls, and nothing of any domain.

The project's settings name a Registry (ROLLOUT_REGISTRY); rollout finds
experiments through it and never imports the module that defines them.
"""

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable


class Difference(Protocol):
    """What compare() returns: whether the two outcomes are equal, and the experiment's own account of how
    they differ. rollout reads nothing else: whether a side raised it knows from the call itself."""

    equal: bool
    shape: str  # what makes two differences the same one (which parts, fields, error kinds — not the data)

    def as_dict(self) -> dict:
        """The details, as a JSON object; lists in it are cut to SHADOW_DIFF_ROWS items when recorded."""


@runtime_checkable
class Experiment(Protocol):
    """A control/candidate pair. Errors either side raises carry a `kind` (else their class name is the kind)."""

    name: str
    control: str  # the backend name of the control (e.g. "pg"), as metrics and records show it
    candidate: str
    control_label: str  # how people call it (e.g. "function")
    candidate_label: str
    # Optional, for retirement (without them `rollout retire` refuses, naming them): `control_function`, the
    # control's PostgreSQL function as regprocedure text ("fn_get_web_caps(bigint)"), and `app_label`, the app
    # whose migrations create it (the retirement migration goes there).

    def clean(self, params: Mapping, parse: bool = False) -> dict:
        """Validated parameters; raises an error with a `param` attribute naming the culprit."""

    def run(self, backend: str, params: Mapping) -> Any: ...

    def run_many(self, backend: str, name: str, values: list, params: Mapping) -> dict:
        """{value: answer} for many values of one parameter."""

    def run_cached(self, backend: str, params: Mapping) -> tuple[Any, Any]:
        """(answer, hit): hit is falsy on a miss (or when the experiment has no cache). An experiment that
        caches through rollout.cache names the tables its answer reads in an attribute `reads` (any table:
        migrate puts the generation trigger on each)."""

    def cached_answer(self, backend: str, params: Mapping) -> tuple[bool, Any]:
        """(found, answer) the cache holds now."""

    def compare(self, control: Any, candidate: Any) -> Difference:
        """control and candidate are each an answer or the exception the side raised."""

    def ignored(self, control: Any, candidate: Any, difference: Difference) -> str | None:
        """The reason of an accepted difference, or None."""

    def infrastructure_failure(self, exception: BaseException) -> bool:
        """Whether an exception says the infrastructure failed (connection lost, shutdown, timeout), not the logic."""

    def allowed_for(self, client_id: int, params: Mapping) -> bool:
        """Tenant isolation at the API: may a caller of this client ask with these parameters."""

    def redact(self, client_id: int, params: Mapping, answer: Any) -> tuple[Any, int]:
        """Tenant isolation on the answer at the API: (the answer without every part — row, id, id or name
        inside a text — that belongs to a client other than client_id, how many parts were removed)."""

    def status_for(self, exception: BaseException) -> tuple[int, str] | None:
        """(HTTP status, kind) the API answers this error with, or None to let rollout decide: 503 for an
        infrastructure failure, else a logged 500."""


@runtime_checkable
class Registry(Protocol):
    def get(self, name: str) -> Experiment:
        """The experiment, or an error that is a LookupError."""

    def names(self) -> list[str]: ...

    def snapshot(self, using: str = "default") -> AbstractContextManager:
        """One consistent read of the data on `using`, for comparing both backends."""
