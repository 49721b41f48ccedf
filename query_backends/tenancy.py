"""Which legacy client owns each part of a query's parameters and answer: the API's tenant wall.

A business unit belongs to the client at the top of its tree (the ancestor
whose parent is the sentinel). A person, group, asset, question set, job or
jobneed belongs to the client its client_id names (itself a unit: a legacy
client_id naming a site still belongs to that site's client); a capability to
its client, or to everyone when its client is NULL (the shared menu). An id
with no row, NULL or the sentinel belongs to no one.

Parameters are checked before the call (`allowed`); the answer after it,
because the legacy data links across clients: a checklist of client B on a
site of client A, a jobneed of A whose creator is B's person, a capability of
B inside A's menu. A definition's Wall says what each part of its answer
names, down to ids and names packed into text; `Wall.redact` removes every
part another client owns and counts what it removed. Who owns which id is
read through the never-stale query cache (retired by any write to the tables
it reads), so a warm call costs no query.
"""

from dataclasses import dataclass
from types import SimpleNamespace

from django.db.models import F
from django_cte import CTE, with_cte

from query_backends.models import (
    SENTINEL_ID,
    Asset,
    BusinessUnit,
    Capability,
    Job,
    JobNeed,
    People,
    PeopleGroup,
    QuestionSet,
)
from rollout.cache import cached

NO_ONE = None
EVERYONE = "everyone"
UNIT = "unit"
# The kinds of row an id can name, besides a unit, and the model holding each one's client_id.
MODELS = {
    "people": People,
    "group": PeopleGroup,
    "asset": Asset,
    "questionset": QuestionSet,
    "job": Job,
    "jobneed": JobNeed,
    "capability": Capability,
}
KINDS = (UNIT, *MODELS)
# What each parameter names.
PARAMS = {
    "bu_id": UNIT,
    "site_id": UNIT,
    "client_id": UNIT,
    "people_id": "people",
    "asset_id": "asset",
    "questionset_id": "questionset",
    "root_id": "capability",
}
NAMES_SEPARATOR = "~"  # how fn_getassetvsquestionset joins checklist names


def _clients_of_units(ids):
    """{unit id: its client's id}, walking every unit up its tree in one recursive query."""

    def make(cte):
        return (
            BusinessUnit.objects.filter(id__in=ids)
            .values("id", "parent_id", origin=F("id"))
            .union(
                cte.join(BusinessUnit, id=cte.col.parent_id).values("id", "parent_id", origin=cte.col.origin), all=False
            )
        )

    walk = CTE.recursive(make, name="tenant_walk")
    tops = with_cte(walk, select=walk.queryset()).filter(parent_id=SENTINEL_ID).values_list("origin", "id")
    return dict(tops)


def _compute_owners(kind, ids):
    """The owner of each id, in the order of ids (a list of scalars: the cache copies it at C speed)."""
    if kind == UNIT:
        tops = _clients_of_units(list(ids))
        return [tops.get(i, NO_ONE) for i in ids]
    model = MODELS[kind]
    clients = dict(model.objects.filter(id__in=ids).values_list("id", "client_id"))
    units = {c for c in clients.values() if c is not None and c != SENTINEL_ID}
    tops = _clients_of_units(list(units)) if units else {}

    def owner(i):
        if i not in clients:
            return NO_ONE
        client = clients[i]
        if client is None and model is Capability:
            return EVERYONE
        return tops.get(client, NO_ONE)

    return [owner(i) for i in ids]


# Cached like a query: an owner changes only with a write to its table or to the units above it.
_LOOKUPS = {
    kind: SimpleNamespace(name=f"owners_of_{kind}", reads=tuple(sorted({"bt", model._meta.db_table})), cache="always")
    for kind, model in {UNIT: BusinessUnit, **MODELS}.items()
}


def owners(kind, values):
    """{value: its client id, EVERYONE or NO_ONE} for the ids of one kind (texts of digits count as ids)."""
    ids = tuple(sorted({i for i in map(_as_id, values) if i is not None}))
    if not ids:
        return {}
    found, _ = cached(_LOOKUPS[kind], {"ids": ids}, lambda: _compute_owners(kind, ids))
    return dict(zip(ids, found, strict=True))


def _as_id(value):
    if isinstance(value, str):  # asset ids arrive as text, and packed ids are text
        value = int(value) if value.isascii() and value.isdigit() else None
    if isinstance(value, bool) or not isinstance(value, int) or value == SENTINEL_ID:
        return None
    return value


def clients_touched(params):
    """The clients (ids, or NO_ONE / EVERYONE) the cleaned parameters point into."""
    touched = set()
    for key, value in params.items():
        if key in PARAMS and value is not None:
            touched.add(owners(PARAMS[key], [value]).get(_as_id(value), NO_ONE))
    return touched


def allowed(client_id, params):
    """May someone of this client ask with these parameters?"""
    return client_id is not None and clients_touched(params) <= {client_id, EVERYONE}


class Redaction:
    """One answer on its way to one client: which of its ids are another client's, and how many parts went."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.removed = 0

    def foreign(self, kind, values):
        """The values (as given) that name a row of another client."""
        values = list(values)
        found = owners(kind, values)
        return {v for v in values if found.get(_as_id(v), NO_ONE) not in (self.client_id, NO_ONE, EVERYONE)}


@dataclass(frozen=True)
class IdList:
    """Ids of one kind joined by `sep` in a text: the answer itself (column None), or a column of each row."""

    kind: str
    column: str | None = None
    sep: str = " "

    def redact(self, call, params, answer, whole):
        if self.column is None:
            return self._text(call, answer, call.foreign(self.kind, _split(answer, self.sep)))
        texts = [row[self.column] for row in answer]
        foreign = call.foreign(self.kind, (token for text in texts for token in _split(text, self.sep)))
        if not foreign:
            return answer
        return [{**row, self.column: self._text(call, row[self.column], foreign)} for row in answer]

    def _text(self, call, text, foreign):
        tokens = _split(text, self.sep)
        kept = [token for token in tokens if token not in foreign]
        call.removed += len(tokens) - len(kept)
        return self.sep.join(kept) if len(kept) < len(tokens) else text


def _split(text, sep):
    return text.split(sep) if isinstance(text, str) and text else []


def _without_names(text, keep, drop):
    """The `~`-joined names of text without those in drop, read knowing every name it may hold (a name may
    itself hold a `~`): at each place, the longest known name that ends at a separator or the end."""
    if not drop or not isinstance(text, str):
        return text, 0
    known = sorted(keep | drop, key=len, reverse=True)
    names, at = [], 0
    while at <= len(text):
        name = next(
            (
                n
                for n in known
                if text.startswith(n, at) and text[at + len(n) : at + len(n) + 1] in ("", NAMES_SEPARATOR)
            ),
            None,
        )
        if name is None:  # a name the data no longer holds: up to the next separator
            end = text.find(NAMES_SEPARATOR, at)
            name = text[at : end if end >= 0 else len(text)]
        names.append(name)
        at += len(name) + 1
    kept = [n for n in names if n not in drop or n in keep]
    return NAMES_SEPARATOR.join(kept), len(names) - len(kept)


def _checklists(call, qset_ids):
    """{checklist id: (its name, whether another client owns it)} for the ids (one lookup for all of them)."""
    ids = tuple(sorted({i for i in map(_as_id, qset_ids) if i is not None}))
    if not ids:
        return {}
    named, _ = cached(_QSET_NAMES, {"ids": ids}, lambda: _compute_names(ids))
    foreign = call.foreign("questionset", ids)
    return {i: (name, i in foreign) for i, name in zip(ids, named, strict=True)}


def _without_checklist_names(call, text, checklists, ids):
    """The names text without those only another client's checklists (among ids) hold; counted."""
    found = [checklists[i] for i in map(_as_id, ids) if i in checklists and checklists[i][0] is not None]
    drop = {name for name, foreign in found if foreign}
    keep = {name for name, foreign in found if not foreign}
    text, removed = _without_names(text, keep, drop)
    call.removed += removed
    return text


_QSET_NAMES = SimpleNamespace(name="questionset_names", reads=("questionset",), cache="always")
_QSET_OF_ASSET = SimpleNamespace(name="questionsets_of_asset", reads=("questionset",), cache="always")


def _compute_names(ids):
    names = dict(QuestionSet.objects.filter(id__in=ids).values_list("id", "qsetname"))
    return [names.get(i) for i in ids]


@dataclass(frozen=True)
class QuestionSetNames:
    """A row's checklist names joined by `~` (column), the checklists whose ids the row holds in `ids`."""

    column: str
    ids: str

    def redact(self, call, params, answer, whole):
        checklists = _checklists(call, (i for row in answer for i in _split(row[self.ids], " ")))
        if not any(foreign for _, foreign in checklists.values()):
            return answer
        rows = []
        for row in answer:
            text = _without_checklist_names(call, row[self.column], checklists, _split(row[self.ids], " "))
            rows.append({**row, self.column: text} if text != row[self.column] else row)
        return rows


@dataclass(frozen=True)
class AssetQuestionSets:
    """fn_getassetvsquestionset's text: the ids (or, for type 'name', the names) of the top-level checklists
    of the site that include the asset."""

    def redact(self, call, params, answer, whole):
        if (params.get("type") or "").lower() != "name":
            return IdList("questionset").redact(call, params, answer, whole)
        site, asset = params["site_id"], params["asset_id"]
        ids, _ = cached(
            _QSET_OF_ASSET,
            {"site_id": site, "asset_id": asset},
            lambda: list(
                QuestionSet.objects.filter(
                    parent_id=SENTINEL_ID, bu_id=site, assetincludes__contains=[asset]
                ).values_list("id", flat=True)
            ),
        )
        return _without_checklist_names(call, answer, _checklists(call, ids), ids)


@dataclass(frozen=True)
class CapabilityPaths:
    """The menu tree's path (capscodes joined by '->') and xpath (the root id, then '>' + id + depth per
    level): rebuilt without the capabilities of another client, read from the chain of parents in the answer."""

    def redact(self, call, params, answer, whole):
        by_id = {row["id"]: row for row in whole}
        foreign = call.foreign("capability", by_id)
        if not foreign:
            return answer
        rows = []
        for row in answer:
            chain = [row]
            while chain[-1]["depth"] > 1 and chain[-1]["parent_id"] in by_id:
                chain.append(by_id[chain[-1]["parent_id"]])
            chain.reverse()
            gone = sum(link["id"] in foreign for link in chain)
            if not gone:
                rows.append(row)
                continue
            call.removed += gone
            own = [link for link in chain if link["id"] not in foreign]
            xpath = "".join(str(link["id"]) if link["depth"] == 1 else f">{link['id']}{link['depth']}" for link in own)
            rows.append({**row, "path": "->".join(link["capscode"] for link in own), "xpath": xpath})
        return rows


@dataclass(frozen=True)
class Wall:
    """What each part of a query's answer names, so another client's parts can be taken out.

    rows: (column, kind) pairs naming the row itself — a row another client owns is dropped whole.
    ids: (column, kind) pairs referring to some other row — another client's id becomes None, with the
    columns `described` says describe that row (e.g. its name).
    packed: pieces for ids and names inside text, applied in order, before the rows are dropped (a path is
    read along the rows that will be dropped).
    An empty Wall says the answer cannot hold another client's part: e.g. every unit of a tree belongs to
    the client at its top, whose id the parameters were checked for.
    """

    rows: tuple[tuple[str, str], ...] = ()
    ids: tuple[tuple[str, str], ...] = ()
    described: tuple[tuple[str, str], ...] = ()  # (id column, column describing the row it names)
    packed: tuple = ()

    def redact(self, client_id, params, answer):
        """(the answer without another client's parts, how many parts were removed)."""
        if client_id is None or answer in (None, "", []):
            return answer, 0
        call = Redaction(client_id)
        whole = answer
        for piece in self.packed:
            answer = piece.redact(call, params, answer, whole)
        if (self.rows or self.ids) and isinstance(answer, list):
            answer = self._rows(call, answer)
        return answer, call.removed

    def _rows(self, call, rows):
        for column, kind in self.rows:
            foreign = call.foreign(kind, (row[column] for row in rows))
            kept = [row for row in rows if row[column] not in foreign]
            call.removed += len(rows) - len(kept)
            rows = kept
        blanked = {}
        for column, kind in self.ids:
            foreign = call.foreign(kind, (row[column] for row in rows))
            if foreign:
                blanked[column] = foreign
        if not blanked:
            return rows
        described = {}
        for column, description in self.described:
            described.setdefault(column, []).append(description)
        result = []
        for row in rows:
            changes = {}
            for column, foreign in blanked.items():
                if row[column] in foreign:
                    changes[column] = None
                    changes.update(dict.fromkeys(described.get(column, ()), None))
            call.removed += sum(1 for column in changes if column in blanked)
            result.append({**row, **changes} if changes else row)
        return result


# An answer that cannot hold another client's part.
NOTHING_FOREIGN = Wall()
PEOPLE_REFERENCES = (("cuser_id", "people"), ("muser_id", "people"))
# What a jobneed row names besides its own client (job_needs, external_tour_job_needs).
JOBNEED_REFERENCES = (
    ("pgroup_id", "group"),
    ("asset_id", "asset"),
    ("job_id", "job"),
    ("qset_id", "questionset"),
    ("people_id", "people"),
    ("performedby_id", "people"),
    ("parent_id", "jobneed"),
    ("bu_id", UNIT),
    *PEOPLE_REFERENCES,
)
