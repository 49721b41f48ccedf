"""Twins of fn_getassetvsquestionset and fn_getassetdetails.

Text ordering (names and ids-as-text) is always done by the database, under
its collation, never by Python's sort: that is what the legacy functions did.
"""

from django.contrib.postgres.aggregates import StringAgg
from django.db.models import CharField, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Cast, Coalesce
from django.db.models.sql.constants import LOUTER
from django_cte import CTE, with_cte

from query_backends.models import SENTINEL_ID, Asset, BusinessUnit, QuestionSet
from query_backends.twins import one_value
from query_backends.twins.compiled import CompiledQuery
from query_backends.twins.postgres import Unnest

ASSET_COLUMNS = (
    "id",
    "uuid",
    "assetcode",
    "assetname",
    "enable",
    "iscritical",
    "parent_id",
    "runningstatus",
    "identifier",
    "type_id",
    "category_id",
    "subcategory_id",
    "brand_id",
    "ctzoffset",
    "capacity",
    "unit_id",
    "bu_id",
    "client_id",
    "cuser_id",
    "muser_id",
    "cdtz",
    "mdtz",
    "location_id",
    "servprov_id",
    "servprovname",
)
ASSETINCLUDES_LENGTH = QuestionSet._meta.get_field("assetincludes").base_field.max_length


def _top_level_questionsets(site_id):
    return QuestionSet.objects.filter(parent_id=SENTINEL_ID, bu_id=site_id)


def _packed(site_id, asset_id, name):
    """One row, built by the database as the function builds it: the distinct names sorted in its collation
    and joined by "~", or the distinct ids as text sorted as text and joined by spaces."""
    rows = _top_level_questionsets(site_id).filter(assetincludes__contains=[asset_id])
    if name:
        return one_value(rows, StringAgg("qsetname", "~", distinct=True, order_by="qsetname"))
    idtext = Cast("id", TextField())
    return one_value(rows.annotate(idtext=idtext), StringAgg("idtext", " ", distinct=True, order_by="idtext"))


_PACKED = CompiledQuery(_packed)


def asset_questionsets(site_id, asset_id, type=""):
    if len(asset_id) > ASSETINCLUDES_LENGTH:
        # No varchar(50) element can equal it; Django's varchar(50)[] cast would truncate it into a match.
        return ""
    [row] = _PACKED.rows(("answer",), site_id=site_id, asset_id=asset_id, name=type.lower() == "name")
    return row["answer"] or ""


def _details(mdtz, site_id):
    """One statement: the site's top-level checklists, unnested to (asset id as text, checklist) pairs and
    aggregated per asset as the legacy function did per row (distinct, ids sorted as text, names in the
    database's collation), then joined to the changed assets by that text. The checklists are read by site,
    once, never by the list of asset ids: the cost grows with assets + checklists, not their product."""
    pairs = CTE(
        _top_level_questionsets(site_id)
        .filter(assetincludes__isnull=False)
        .annotate(asset_key=Unnest("assetincludes", output_field=CharField()), idtext=Cast("id", TextField()))
        .values("asset_key", "idtext", "qsetname"),
        name="asset_qset_pairs",
    )
    per_asset = CTE(
        pairs.queryset()
        .values("asset_key")
        .annotate(
            ids_text=StringAgg("idtext", " ", distinct=True, order_by="idtext"),
            names_text=StringAgg("qsetname", "~", distinct=True, order_by="qsetname"),
        )
        .values("asset_key", "ids_text", "names_text"),
        name="asset_qsets",
    )
    assets = (
        Asset.objects.filter(mdtz__gte=mdtz, bu_id=site_id, identifier__isnull=False, enable=True)
        .exclude(identifier="NEA")
        # A probe of bt's primary key per asset: a generic plan would otherwise hash all of bt for a few rows.
        .annotate(
            servprovname=Subquery(BusinessUnit.objects.filter(id=OuterRef("servprov_id")).values("buname")),
            idtext=Cast("id", TextField()),
        )
    )
    joined = per_asset.join(assets, idtext=per_asset.col.asset_key, _join_type=LOUTER).annotate(
        qsetids=Coalesce(per_asset.col.ids_text, Value(""), output_field=TextField()),
        qsetname=Coalesce(per_asset.col.names_text, Value(""), output_field=TextField()),
    )
    return with_cte(pairs, per_asset, select=joined)


_DETAILS = CompiledQuery(_details)


def asset_details(mdtz, site_id):
    return _DETAILS.rows((*ASSET_COLUMNS, "qsetids", "qsetname"), mdtz=mdtz, site_id=site_id)
