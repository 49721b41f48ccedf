"""rollout.Query: a host's PostgreSQL function (the control) and its twin (the candidate), declared in one line.

    rollout.register(rollout.Query(name="fn_open_tickets", candidate=open_tickets))

The function's arguments, their types and defaults and its return shape are read from pg_proc
(postgres/catalog.py) the first time they are needed; checks.py says when the twin cannot take them or the
function is missing. Everything else is optional with a default: order (a multiset), equality
(rollout.equality.compare), ignore rules (none), validation cases (the parameters of the real calls shadow
mode compared), benchmark samples and a floor (none), the tenant rule (none: only callers of every tenant
may use the API when the host declares tenants), caching (none: reads= names the tables the answer depends
on, and rollout.cache serves it while no committed write to them says otherwise — unless the catalog shows
the function may write or answer differently with nothing changed: `uncached` says why).

A function that writes (or that the catalog cannot show only reads) is never run twice: shadow comparisons,
rescue and caching are refused until the host declares it read_only=True.
"""

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import ClassVar

from django.apps import apps
from django.db import connections

from rollout import cache
from rollout.equality import compare
from rollout.errors import InvalidQueryParams, QueryError, infrastructure_failure
from rollout.params import SQL_DEFAULT, Param, clean_params
from rollout.postgres import catalog
from rollout.snapshot import reading_alias

# The Python type a parameter of each PostgreSQL argument type takes.
PYTHON_TYPES = {
    "smallint": int,
    "integer": int,
    "bigint": int,
    "boolean": bool,
    "text": str,
    "character varying": str,
    "character": str,
    "name": str,
    "uuid": str,
    "citext": str,
    "timestamp with time zone": datetime,
    "date": date,
    "numeric": Decimal,
    "real": float,
    "double precision": float,
}
STATUS = {"invalid_params": 400, "unknown_query": 404}


@dataclass(frozen=True)
class Ignore:
    """A known, accepted difference: compare() results it matches are not discrepancies."""

    reason: str
    applies: Callable  # (control, candidate, difference) -> bool


def param_for(argument):
    """The Param of one function argument, or a ValueError saying why its type is not supported."""
    element = argument.type.removesuffix("[]")
    python = PYTHON_TYPES.get(element)
    if python is None:
        raise ValueError(f"argument {argument.name} is of type {argument.type}, which rollout.Query cannot pass")
    default = SQL_DEFAULT if argument.default is not None else Param.REQUIRED
    if element != argument.type:
        return Param(argument.name, list, default, item=python)
    return Param(argument.name, python, default, nullable=argument.default == "NULL")


@dataclass(frozen=True, init=False)
class Query:
    """Query(name=…, candidate=twin, …): `candidate=` takes the twin; as rollout's contract asks, the attribute
    `candidate` then names the twin's backend ("twin") and the twin itself is `twin`."""

    control: ClassVar[str] = "function"
    candidate: ClassVar[str] = "twin"
    control_label: ClassVar[str] = "function"
    candidate_label: ClassVar[str] = "twin"
    cache: ClassVar[str] = "always"  # how rollout.cache keys its answers (no daily roll-over: varies refuses dates)

    name: str
    twin: Callable  # takes the function's arguments as keywords, returns the same answer
    function: str  # the function's name (schema.name, or name(types) for an overload); default: name
    description: str
    ordered: bool  # whether the order of rows (or of an array) is part of the answer
    equality: Callable | None  # (control, candidate) -> Difference; default rollout.equality.compare
    ignore: tuple[Ignore, ...]
    reads: tuple[str, ...]  # the tables the answer depends on: what a cached answer is checked against
    case_source: Callable[[], Iterable[Mapping]] | None  # cases=: validation's parameter sets
    samples: Callable[[int], list[Mapping]] | None  # the benchmark's parameter sets
    floor: str  # hand-written SQL for the same answer (%(name)s placeholders); none: the benchmark says n/a
    read_only: bool  # the host's word that the function only reads, where the catalog cannot show it
    allowed: Callable[[int, Mapping], bool] | None  # may a caller of this tenant ask with these parameters

    def __init__(
        self,
        *,
        name,
        candidate,
        function="",
        description="",
        ordered=False,
        equality=None,
        ignore=(),
        reads=(),
        cases=None,
        samples=None,
        floor="",
        read_only=False,
        allowed=None,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError("name: the query's name, a non-empty string")
        if not callable(candidate):
            raise TypeError(f"query {name!r}: candidate must be the twin, a callable")
        values = dict(locals())
        values["twin"] = values.pop("candidate")
        values["case_source"] = values.pop("cases")
        values["ignore"], values["reads"] = tuple(ignore), tuple(reads)
        for field, value in values.items():
            if field != "self":
                object.__setattr__(self, field, value)

    @property
    def function_name(self):
        return self.function or self.name

    @property
    def control_function(self):
        """The function as PostgreSQL names it (regprocedure text): for `rollout functions` and retirement."""
        return self.signature.signature

    @property
    def app_label(self):
        """The installed app that owns the query, where `rollout retire` writes its migration: the twin's."""
        config = apps.get_containing_app_config(self.twin.__module__)
        return config.label if config else None

    @cached_property
    def signature(self):
        """The function as pg_proc describes it (read once; a missing function is looked up again next time).
        Once retired, its function is dropped: the description its flag kept at retirement serves instead."""
        try:
            return catalog.find(self.function_name)
        except catalog.FunctionNotFound:
            from rollout.lifecycle.retire import retired_function

            kept = retired_function(self.name)
            if kept is None:
                raise
            return kept

    @cached_property
    def params(self):
        return tuple(param_for(argument) for argument in self.signature.arguments)

    @property
    def writes(self):
        """Why the function may write (refusing shadow, rescue and caching), or None. Kept once read; while the
        function cannot be read (missing, the database down) it is refused too, and read again next time."""
        if self.read_only:
            return None
        if "_writes" not in self.__dict__:
            try:
                reason = catalog.writes(self.signature)
            except Exception as exc:  # noqa: BLE001 — whatever stops the reading, nothing may run twice
                return f"{self.function_name} could not be read from pg_proc ({exc})"
            self.__dict__["_writes"] = (
                f"{reason}; declare read_only=True in its rollout.Query if it only reads" if reason else None
            )
        return self.__dict__["_writes"]

    def clean(self, params, parse=False):
        return clean_params(self.params, params, parse=parse)

    def cases(self):
        """Validation's parameter sets: those given (cases=), else those of the real calls shadow mode compared."""
        if self.case_source is not None:
            return list(self.case_source())
        from rollout.models import RecordedCall

        recorded = RecordedCall.objects.filter(query=self.name).order_by("id").values_list("params", flat=True)
        return [self.clean(params, parse=True) for params in recorded]

    def run(self, backend, params):
        if backend == self.control:
            return self._call_function(params)
        if backend == self.candidate:
            return self.twin(**params)
        raise InvalidQueryParams("backend", f"{backend!r} is not one of {self.control}, {self.candidate}")

    def _call_function(self, params):
        function = self.signature
        call = f"{function.qualified_name}({self._arguments(params)})"
        shape = function.shape
        select = f"SELECT * FROM {call}" if shape in (catalog.ROW, catalog.SETOF, catalog.TABLE) else f"SELECT {call}"
        values = list(params.values())
        with connections[reading_alias()].cursor() as cursor:
            cursor.execute(select, values)
            if shape == catalog.TABLE:
                columns = [column.name for column in cursor.description]
                return [dict(zip(columns, row)) for row in cursor.fetchall()]
            if shape == catalog.SETOF:
                return [row[0] for row in cursor.fetchall()]
            if shape == catalog.ROW:
                row = cursor.fetchone()
                return dict(zip([column.name for column in cursor.description], row))
            value = cursor.fetchone()[0]
        # Django's psycopg loaders leave json as text; the caller wants the value.
        return json.loads(value) if shape == catalog.JSON and isinstance(value, str) else value

    def _arguments(self, params):
        """Positional while no argument is left out (unnamed arguments need it), then by name (`p => value`)."""
        parts, gap = [], False
        for argument in self.signature.arguments:
            if argument.name not in params:
                gap = True
            else:
                parts.append(f"{catalog.ident(argument.name) + ' => ' if gap else ''}%s::{argument.type}")
        return ", ".join(parts)

    def run_many(self, backend, name, values, params):
        return {value: self.run(backend, self.clean({**params, name: value})) for value in values}

    @property
    def uncached(self):
        """Why answers are not cached (a sentence), or None when they are: the query names the tables it reads
        (reads=), the function only reads (writes) and its answer depends on nothing else (catalog.varies: no
        clock, chance or session in it or what it calls). Kept once read, like writes."""
        if not self.reads:
            return "no reads= declared"
        writes = self.writes
        if writes:
            return writes
        if "_varies" not in self.__dict__:
            try:
                self.__dict__["_varies"] = catalog.varies(self.signature)
            except Exception as exc:  # noqa: BLE001 — what cannot be read is not cached, and read again next time
                return f"{self.function_name} could not be read from pg_proc ({exc})"
        return self.__dict__["_varies"]

    def run_cached(self, backend, params):
        """(answer, hit) through rollout's never-stale cache when the query may be cached (uncached is None)."""
        if self.uncached or backend not in self._versions:  # an unknown backend: run() names it
            return self.run(backend, params), False
        return cache.cached(self, self._keyed(params), lambda: self.run(backend, params), self._versions[backend])

    def cached_answer(self, backend, params, tier=None):
        """(found, answer): what the cache holds now for these parameters — in one tier, or in either."""
        if self.uncached or backend not in self._versions:
            return False, None
        value = cache.peek(self, self._keyed(params), tier, self._versions[backend])
        return (False, None) if value is cache.MISS else (True, value)

    def _keyed(self, params):
        """The parameters as a cache key takes them: an array argument's list as a tuple."""
        if not self._takes_arrays:
            return params
        return {name: tuple(value) if isinstance(value, list) else value for name, value in params.items()}

    @cached_property
    def _takes_arrays(self):
        return any(param.type is list for param in self.params)

    @cached_property
    def _versions(self):
        """Each side's code version in cache keys: the function's definition as pg_proc holds it (and the
        deploy), the twin's whole module."""
        function = self.signature
        return cache.versions(
            self, f"{function.signature} {function.result_sql} {function.volatility}\n{function.body}"
        )

    def compare(self, control, candidate):
        if self.equality is not None:
            return self.equality(control, candidate)
        return compare(control, candidate, ordered=self.ordered)

    def ignored(self, control, candidate, difference):
        return next((rule.reason for rule in self.ignore if rule.applies(control, candidate, difference)), None)

    @staticmethod
    def infrastructure_failure(exception):
        return infrastructure_failure(exception)

    def allowed_for(self, client_id, params):
        if self.allowed is not None:
            return self.allowed(client_id, params)
        return client_id is None  # tenants declared and no rule for them: only callers of every tenant

    def redact(self, client_id, params, answer):
        return answer, 0

    @staticmethod
    def status_for(exception):
        kind = getattr(exception, "kind", None)
        return (STATUS[kind], kind) if isinstance(exception, QueryError) and kind in STATUS else None

    def problems(self):
        """Why this declaration cannot serve: the twin cannot take the function's arguments, a type rollout cannot
        pass, caching asked of a function that may write. (A missing function raises FunctionNotFound.)"""
        try:
            params = self.params
        except ValueError as exc:
            return [f"function {self.signature.signature}: {exc}"]
        found = []
        # Called with every argument, and with only those the function has no default for (the others left out).
        for given in ([p.name for p in params], [p.name for p in params if p.required]):
            try:
                inspect.signature(self.twin).bind(**dict.fromkeys(given))
            except TypeError as exc:
                found.append(f"the twin cannot take the function's arguments ({self.signature.arguments_sql}): {exc}")
                break
            except ValueError:  # no signature to read (a builtin): nothing to check
                break
        if self.reads and self.uncached:
            found.append(f"caching is refused: {self.uncached}")
        return found
