"""The one place that knows every query: its parameters, its two backends, how to compare its answers."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from django.db import connections

from query_backends import caching, tenancy
from query_backends import functions as legacy
from query_backends.equality import compare
from query_backends.errors import (
    DatabaseUnavailable,
    InvalidQueryParams,
    UnknownQuery,
    infrastructure_failure,
    translated_database_errors,
)
from query_backends.params import Param, clean_params
from query_backends.snapshot import reading_alias, snapshot
from query_backends.twins import assets, business_units, capabilities, jobs

BACKENDS = ("pg", "orm")


@dataclass(frozen=True)
class IgnoreRule:
    """A known, accepted difference: compare() results it matches are not discrepancies."""

    reason: str
    applies: Callable  # (control, candidate, difference) -> bool


@dataclass(frozen=True)
class QueryDefinition:
    # The experiment's two sides, as rollout's contract.Experiment names them.
    control: ClassVar[str] = "pg"
    candidate: ClassVar[str] = "orm"
    control_label: ClassVar[str] = "function"
    candidate_label: ClassVar[str] = "twin"

    name: str
    description: str
    params: tuple[Param, ...]
    function: legacy.LegacyFunction
    twin: Callable
    ordered: bool
    reads: tuple[str, ...]  # the tables its answer depends on
    cache: str | None = "always"  # "always", "daily" (reads current_date) or None (reads now(): never cached)
    batch: tuple[str, Callable] | None = None  # (parameter, twin answering many values of it at once)
    ignore: tuple[IgnoreRule, ...] = ()
    # Which client owns each row (None: every row lies in the tree or site the parameters name, already checked).
    row_owner: tenancy.RowOwner | None = None

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
        return caching.cached(self, {"backend": backend, **params}, lambda: self.run(backend, params))

    def cached_answer(self, backend, params, tier=None):
        """(found, answer): what the cache holds now for these parameters — in one tier, or in either."""
        value = caching.peek(self, {"backend": backend, **params}, tier) if self.cache else caching.MISS
        return (False, None) if value is caching.MISS else (True, value)

    def allowed_for(self, client_id, params):
        """Tenant isolation: whether a caller of this legacy client may ask with these parameters."""
        return tenancy.allowed(client_id, params)

    def foreign_rows(self, client_id, answer):
        """Tenant isolation on rows: the indexes of the answer's rows that belong to another client."""
        return tenancy.foreign_rows(self.row_owner, client_id, answer)

    @staticmethod
    def infrastructure_failure(exception):
        return infrastructure_failure(exception)

    def compare(self, control, candidate):
        return compare(control, candidate, ordered=self.ordered)

    def ignored(self, control, candidate, difference):
        """The reason of the first ignore rule this difference matches, or None."""
        return next((rule.reason for rule in self.ignore if rule.applies(control, candidate, difference)), None)


class QueryRegistry:
    def __init__(self, definitions):
        self._definitions = {d.name: d for d in definitions}

    def get(self, name):
        try:
            return self._definitions[name]
        except (KeyError, TypeError):
            raise UnknownQuery(name, self._definitions) from None

    def names(self):
        return list(self._definitions)

    def register(self, definition):
        self._definitions[definition.name] = definition

    def unregister(self, name):
        self._definitions.pop(name, None)

    def __iter__(self):
        return iter(self._definitions.values())

    def __contains__(self, name):
        return name in self._definitions

    @staticmethod
    def snapshot(using="default"):
        return snapshot(using)


_JOB_PARAMS = (Param("people_id", int), Param("bu_id", int), Param("client_id", int))
_JOB_TABLES = ("jobneed", "pgbelonging")
F = legacy.FUNCTIONS

REGISTRY = QueryRegistry(
    [
        QueryDefinition(
            "job_needs",
            "Today's and tomorrow's work for a person at a site.",
            _JOB_PARAMS,
            F["fun_getjobneed"],
            jobs.job_needs,
            False,
            _JOB_TABLES,
            cache=None,
            batch=("people_id", jobs.job_needs_many),
            row_owner=tenancy.RowOwner("client_id", "client"),
        ),
        QueryDefinition(
            "external_tour_job_needs",
            "A person's current external tours (the site is ignored).",
            _JOB_PARAMS,
            F["fun_getexttourjobneed"],
            jobs.external_tour_job_needs,
            False,
            _JOB_TABLES,
            cache=None,
            row_owner=tenancy.RowOwner("client_id", "client"),
        ),
        QueryDefinition(
            "schedule_for_adhoc",
            "The open scheduled instance an ad-hoc scan belongs to.",
            (
                Param("plandatetime", datetime),
                Param("bu_id", int),
                Param("people_id", int),
                Param("asset_id", int),
                Param("questionset_id", int),
            ),
            F["fn_get_schedule_for_adhoc"],
            jobs.schedule_for_adhoc,
            True,
            _JOB_TABLES,
            row_owner=tenancy.RowOwner("bu_id", "unit"),
        ),
        QueryDefinition(
            "bu_list",
            "A business unit with its ancestors and/or descendants.",
            (
                Param("bu_id", int),
                Param("up", bool, True),
                Param("down", bool, True),
                Param("fmt", str, "text", choices=("text", "array", "jsonb")),
            ),
            F["fn_get_bulist"],
            business_units.bu_list,
            True,
            ("bt",),
        ),
        QueryDefinition(
            "bulist_by_identifier",
            "A top-level client's customers and/or sites (or the client).",
            (Param("bu_id", int, nullable=True), Param("customers", bool, True), Param("sites", bool, True)),
            F["fn_getbulist_basedon_idnf"],
            business_units.bulist_by_identifier,
            True,
            ("bt", "typeassist"),
        ),
        QueryDefinition(
            "sites_list_web",
            "The sites a person may pick in the web front end.",
            (Param("client_id", int), Param("people_id", int)),
            F["fn_get_siteslist_web"],
            business_units.sites_list_web,
            False,
            ("bt", "typeassist", "people", "pgbelonging", "sitepeople"),
            cache="daily",
            row_owner=tenancy.RowOwner("id", "unit"),
        ),
        QueryDefinition(
            "asset_questionsets",
            "The checklists of a site that include an asset, as text.",
            (Param("site_id", int), Param("asset_id", str), Param("type", str, "")),
            F["fn_getassetvsquestionset"],
            assets.asset_questionsets,
            True,
            ("questionset",),
        ),
        QueryDefinition(
            "asset_details",
            "Assets of a site changed since a moment, for mobile sync.",
            (Param("mdtz", datetime), Param("site_id", int)),
            F["fn_getassetdetails"],
            assets.asset_details,
            False,
            ("asset", "bt", "questionset"),
            row_owner=tenancy.RowOwner("client_id", "client"),
        ),
        QueryDefinition(
            "web_capabilities",
            "The web menu tree under a root capability.",
            (Param("root_id", int),),
            F["fn_get_web_caps"],
            capabilities.web_capabilities,
            True,
            ("capability",),
            row_owner=tenancy.RowOwner("id", "capability"),
        ),
    ]
)


def run_query(name, backend, **params):
    definition = REGISTRY.get(name)
    if backend not in BACKENDS:
        raise InvalidQueryParams("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    return definition.run(backend, definition.clean(params))
