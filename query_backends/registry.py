"""The one place that knows every query: its parameters, its two backends, how to compare its answers,
the cases validation runs, the samples the benchmark times and the hand-written floor it is measured against.

Adding a legacy query is one QueryDefinition here, its twin and its SQL file; `rollout_queries.py` registers
them with rollout as any host registers its own; `problems()` (run by the system check query_backends.E001)
says when the pieces of a definition do not agree.
"""

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import ClassVar

from django.db import connections

from query_backends import cases, floor, tenancy
from query_backends import functions as legacy
from query_backends.cases import Sampling
from query_backends.errors import (
    DatabaseUnavailable,
    InvalidQueryParams,
    infrastructure_failure,
    status_for,
    translated_database_errors,
)
from query_backends.floor import Floor
from query_backends.twins import assets, business_units, capabilities, jobs
from rollout import cache
from rollout.equality import compare
from rollout.params import Param, clean_params
from rollout.registry import REGISTRY
from rollout.snapshot import reading_alias

BACKENDS = ("pg", "orm")
CACHE_POLICIES = ("always", "daily", None)
# The SQL type a function argument has for each parameter type: the function and the parameters must agree.
SQL_TYPES = {int: legacy.BIGINT, bool: legacy.BOOL, str: legacy.TEXT, datetime: legacy.TSTZ}


@dataclass(frozen=True)
class IgnoreRule:
    """A known, accepted difference: compare() results it matches are not discrepancies."""

    reason: str
    applies: Callable  # (control, candidate, difference) -> bool


@dataclass(frozen=True, kw_only=True)
class QueryDefinition:
    # The experiment's two sides, as rollout's contract.Experiment names them.
    control: ClassVar[str] = "pg"
    candidate: ClassVar[str] = "orm"
    control_label: ClassVar[str] = "function"
    candidate_label: ClassVar[str] = "twin"
    # Where retirement writes its migration: the app whose migrations install the functions.
    app_label: ClassVar[str] = "query_backends"

    name: str
    description: str
    params: tuple[Param, ...]
    function: legacy.LegacyFunction
    twin: Callable
    ordered: bool
    reads: tuple[str, ...]  # the tables its answer depends on
    cases: Callable[[], Iterable[Mapping]]  # validation: every case the loaded data offers
    samples: Callable[[Sampling], list[Mapping]]  # benchmark: realistic parameter sets drawn at random
    floor: Floor  # benchmark: the best hand-written SQL for the same answer
    cache: str | None = "always"  # "always", "daily" (reads current_date) or None (reads now(): never cached)
    batch: tuple[str, Callable] | None = None  # (parameter, twin answering many values of it at once)
    ignore: tuple[IgnoreRule, ...] = ()
    # Which client owns each part of the answer, down to ids and names packed into text (tenancy.Wall).
    wall: tenancy.Wall = tenancy.NOTHING_FOREIGN

    @property
    def control_function(self):
        """The function as PostgreSQL names it (regprocedure text): what retirement checks and drops."""
        return self.function.signature

    def clean(self, params: Mapping, parse=False):
        """Validated parameters in contract order, defaults filled; InvalidQueryParams names the culprit."""
        return clean_params(self.params, params, parse=parse)

    def run(self, backend, params):
        """Run one backend with already-cleaned parameters.

        Every query only reads, so when the connection was lost the call is made once more on a fresh
        connection: no row of the failed call reached the caller (both backends fetch the whole answer
        before returning). Not inside the caller's transaction: that transaction (and its snapshot) is
        gone with the connection, and a new one would not be the same.
        """
        try:
            return self._run(backend, params)
        except DatabaseUnavailable as exc:
            reading = connections[reading_alias()]
            if not exc.connection_lost or reading.in_atomic_block:
                raise
            reading.close()  # the pool discards the broken connection; the retry checks out a working one
            return self._run(backend, params)

    def _run(self, backend, params):
        if backend == "pg":
            return self.function(*params.values())
        if backend == "orm":
            with translated_database_errors():
                return self.twin(**params)
        raise InvalidQueryParams("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")

    def run_many(self, backend, name, values, params):
        """{value: answer} for many values of one parameter; the twin batches when it can."""
        spec = next((p for p in self.params if p.name == name), None)
        if spec is None:
            raise InvalidQueryParams(name, "unknown parameter")
        values = [spec.clean(v) for v in values]
        if not values:
            return {}
        cleaned = self.clean({**params, name: values[0]})
        if backend == "orm" and self.batch and self.batch[0] == name:
            others = {k: v for k, v in cleaned.items() if k != name}
            with translated_database_errors():
                return self.batch[1](values, **others)
        return {value: self.run(backend, {**cleaned, name: value}) for value in values}

    def run_cached(self, backend, params):
        """(answer, hit): through the never-stale cache when the query may be cached, else (run, False).

        hit is the tier that answered, "memory" or "redis" (truthy), or False when the backend ran.
        """
        if self.cache is None:
            return self.run(backend, params), False
        return cache.cached(self, params, lambda: self.run(backend, params), self._versions[backend])

    def cached_answer(self, backend, params, tier=None):
        """(found, answer): what the cache holds now for these parameters — in one tier, or in either."""
        value = cache.peek(self, params, tier, self._versions[backend]) if self.cache else cache.MISS
        return (False, None) if value is cache.MISS else (True, value)

    @cached_property
    def _versions(self):
        """Each backend's code version in cache keys: the deploy for the function (its SQL changes only by a
        migration, i.e. a deploy), the twin's module for the twin."""
        return cache.versions(self)

    def allowed_for(self, client_id, params):
        """Tenant isolation: whether a caller of this legacy client may ask with these parameters."""
        return tenancy.allowed(client_id, params)

    def redact(self, client_id, params, answer):
        """Tenant isolation on the answer: (it without every part another client owns, how many parts went)."""
        return self.wall.redact(client_id, params, answer)

    @staticmethod
    def infrastructure_failure(exception):
        return infrastructure_failure(exception)

    @staticmethod
    def status_for(exception):
        return status_for(exception)

    def compare(self, control, candidate):
        return compare(control, candidate, ordered=self.ordered)

    def ignored(self, control, candidate, difference):
        """The reason of the first ignore rule this difference matches, or None."""
        return next((rule.reason for rule in self.ignore if rule.applies(control, candidate, difference)), None)

    def sample(self, n, seed=0):
        """Up to n realistic parameter sets from the loaded data, not yet cleaned (deterministic per seed)."""
        return self.samples(Sampling(n=n, seed=seed))

    def problems(self):
        """Where the pieces of this definition disagree with each other; empty when it has what it needs."""
        names = [p.name for p in self.params]
        found = []
        expected = tuple(SQL_TYPES.get(p.type) for p in self.params)
        if self.function.arg_types != expected:
            found.append(
                f"function {self.function.sql_name} takes ({', '.join(self.function.arg_types)}) "
                f"but the parameters are ({', '.join(map(str, expected))})"
            )
        found += _unbindable("twin", self.twin, **dict.fromkeys(names))
        if self.batch:
            parameter, many = self.batch
            if parameter not in names:
                found.append(f"batch parameter {parameter!r} is not a parameter")
            found += _unbindable("batch twin", many, [], **dict.fromkeys(n for n in names if n != parameter))
        for piece in ("cases", "samples"):
            if not callable(getattr(self, piece)):
                found.append(f"{piece} is not callable")
        if not isinstance(self.floor, Floor):
            found.append("floor is not a Floor")
        else:
            found += self.floor.problems(names)
        if not self.reads and self.cache is not None:
            found.append("a cached query must name the tables it reads, or no write would retire its answers")
        if self.cache not in CACHE_POLICIES:
            found.append(f"cache {self.cache!r} is not one of {', '.join(map(repr, CACHE_POLICIES))}")
        return found


def _unbindable(what, function, *args, **kwargs):
    if not callable(function):
        return [f"{what} is not callable"]
    try:
        inspect.signature(function).bind(*args, **kwargs)
    except TypeError as exc:
        return [f"{what} cannot take the parameters: {exc}"]
    except ValueError:  # no signature to read (a builtin): nothing to check
        pass
    return []


_JOB_PARAMS = (Param("people_id", int), Param("bu_id", int), Param("client_id", int))
_JOB_TABLES = ("jobneed", "pgbelonging")
FUNCTIONS = legacy.FUNCTIONS

DEFINITIONS = (
    QueryDefinition(
        name="job_needs",
        description="Today's and tomorrow's work for a person at a site.",
        params=_JOB_PARAMS,
        function=FUNCTIONS["fun_getjobneed"],
        twin=jobs.job_needs,
        ordered=False,
        reads=_JOB_TABLES,
        cases=cases.job_cases,
        samples=cases.job_samples,
        floor=floor.JOB_NEEDS,
        cache=None,
        batch=("people_id", jobs.job_needs_many),
        wall=tenancy.Wall(rows=(("client_id", tenancy.UNIT),), ids=tenancy.JOBNEED_REFERENCES),
    ),
    QueryDefinition(
        name="external_tour_job_needs",
        description="A person's current external tours (the site is ignored).",
        params=_JOB_PARAMS,
        function=FUNCTIONS["fun_getexttourjobneed"],
        twin=jobs.external_tour_job_needs,
        ordered=False,
        reads=_JOB_TABLES,
        cases=cases.job_cases,
        samples=cases.job_samples,
        floor=floor.EXTERNAL_TOUR_JOB_NEEDS,
        cache=None,
        wall=tenancy.Wall(rows=(("client_id", tenancy.UNIT),), ids=tenancy.JOBNEED_REFERENCES),
    ),
    QueryDefinition(
        name="schedule_for_adhoc",
        description="The open scheduled instance an ad-hoc scan belongs to.",
        params=(
            Param("plandatetime", datetime),
            Param("bu_id", int),
            Param("people_id", int),
            Param("asset_id", int),
            Param("questionset_id", int),
        ),
        function=FUNCTIONS["fn_get_schedule_for_adhoc"],
        twin=jobs.schedule_for_adhoc,
        ordered=True,
        reads=_JOB_TABLES,
        cases=cases.adhoc_cases,
        samples=cases.adhoc_samples,
        floor=floor.SCHEDULE_FOR_ADHOC,
        wall=tenancy.Wall(
            rows=(("jobneedid", "jobneed"), ("bu_id", tenancy.UNIT)),
            ids=(
                ("asset_id", "asset"),
                ("qset_id", "questionset"),
                ("people_id", "people"),
                ("pgroup_id", "group"),
            ),
        ),
    ),
    QueryDefinition(
        name="bu_list",
        description="A business unit with its ancestors and/or descendants.",
        params=(
            Param("bu_id", int),
            Param("up", bool, True),
            Param("down", bool, True),
            Param("fmt", str, "text", choices=("text", "array", "jsonb")),
        ),
        function=FUNCTIONS["fn_get_bulist"],
        twin=business_units.bu_list,
        ordered=True,
        reads=("bt",),
        cases=cases.bu_list_cases,
        samples=cases.bu_list_samples,
        floor=floor.BU_LIST,
        wall=tenancy.NOTHING_FOREIGN,  # every unit of the answer is in the tree of bu_id: its client's, checked
    ),
    QueryDefinition(
        name="bulist_by_identifier",
        description="A top-level client's customers and/or sites (or the client).",
        params=(Param("bu_id", int, nullable=True), Param("customers", bool, True), Param("sites", bool, True)),
        function=FUNCTIONS["fn_getbulist_basedon_idnf"],
        twin=business_units.bulist_by_identifier,
        ordered=True,
        reads=("bt", "typeassist"),
        cases=cases.bulist_by_identifier_cases,
        samples=cases.bulist_by_identifier_samples,
        floor=floor.BULIST_BY_IDENTIFIER,
        wall=tenancy.NOTHING_FOREIGN,  # every unit of the answer is in the tree of bu_id: its client's, checked
    ),
    QueryDefinition(
        name="sites_list_web",
        description="The sites a person may pick in the web front end.",
        params=(Param("client_id", int), Param("people_id", int)),
        function=FUNCTIONS["fn_get_siteslist_web"],
        twin=business_units.sites_list_web,
        ordered=False,
        reads=("bt", "typeassist", "people", "pgbelonging", "sitepeople"),
        cases=cases.sites_list_web_cases,
        samples=cases.sites_list_web_samples,
        floor=floor.SITES_LIST_WEB,
        cache="daily",
        wall=tenancy.Wall(rows=(("id", tenancy.UNIT),), ids=tenancy.PEOPLE_REFERENCES),
    ),
    QueryDefinition(
        name="asset_questionsets",
        description="The checklists of a site that include an asset, as text.",
        params=(Param("site_id", int), Param("asset_id", str), Param("type", str, "")),
        function=FUNCTIONS["fn_getassetvsquestionset"],
        twin=assets.asset_questionsets,
        ordered=True,
        reads=("questionset",),
        cases=cases.asset_questionset_cases,
        samples=cases.asset_questionset_samples,
        floor=floor.ASSET_QUESTIONSETS,
        wall=tenancy.Wall(packed=(tenancy.AssetQuestionSets(),)),
    ),
    QueryDefinition(
        name="asset_details",
        description="Assets of a site changed since a moment, for mobile sync.",
        params=(Param("mdtz", datetime), Param("site_id", int)),
        function=FUNCTIONS["fn_getassetdetails"],
        twin=assets.asset_details,
        ordered=False,
        reads=("asset", "bt", "questionset"),
        cases=cases.asset_details_cases,
        samples=cases.asset_details_samples,
        floor=floor.ASSET_DETAILS,
        wall=tenancy.Wall(
            rows=(("client_id", tenancy.UNIT),),
            ids=(
                ("parent_id", "asset"),
                ("servprov_id", tenancy.UNIT),
                ("bu_id", tenancy.UNIT),
                *tenancy.PEOPLE_REFERENCES,
            ),
            described=(("servprov_id", "servprovname"),),
            # the names first: they are found through the ids beside them
            packed=(tenancy.QuestionSetNames("qsetname", ids="qsetids"), tenancy.IdList("questionset", "qsetids")),
        ),
    ),
    QueryDefinition(
        name="web_capabilities",
        description="The web menu tree under a root capability.",
        params=(Param("root_id", int),),
        function=FUNCTIONS["fn_get_web_caps"],
        twin=capabilities.web_capabilities,
        ordered=True,
        reads=("capability",),
        cases=cases.web_capability_cases,
        samples=cases.web_capability_samples,
        floor=floor.WEB_CAPABILITIES,
        wall=tenancy.Wall(
            rows=(("id", "capability"),), ids=(("parent_id", "capability"),), packed=(tenancy.CapabilityPaths(),)
        ),
    ),
)


def run_query(name, backend, **params):
    definition = REGISTRY.get(name)
    if backend not in BACKENDS:
        raise InvalidQueryParams("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    return definition.run(backend, definition.clean(params))
