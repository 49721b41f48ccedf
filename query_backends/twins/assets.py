"""Twins of fn_getassetvsquestionset and fn_getassetdetails.

Text ordering (names and ids-as-text) is always done by the database, under
its collation, never by Python's sort: that is what the legacy functions did.
"""

from django.db.models import F, OuterRef, Subquery, TextField, Window
from django.db.models.functions import Cast, DenseRank

from query_backends.models import SENTINEL_ID, Asset, BusinessUnit, QuestionSet
from query_backends.twins.compiled import CompiledQuery

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


def _names(site_id, asset_id):
    return _top_level_questionsets(site_id).filter(assetincludes__contains=[asset_id]).order_by("qsetname").distinct()


def _ids(site_id, asset_id):
    return (
        _top_level_questionsets(site_id)
        .filter(assetincludes__contains=[asset_id])
        .annotate(idtext=Cast("id", TextField()))
        .order_by("idtext")
        .distinct()
    )


_NAMES, _IDS = CompiledQuery(_names), CompiledQuery(_ids)


def asset_questionsets(site_id, asset_id, type=""):
    if len(asset_id) > ASSETINCLUDES_LENGTH:
        # No varchar(50) element can equal it; Django's varchar(50)[] cast would truncate it into a match.
        return ""
    if type.lower() == "name":
        return "~".join(r["qsetname"] for r in _NAMES.rows(("qsetname",), site_id=site_id, asset_id=asset_id))
    return " ".join(r["idtext"] for r in _IDS.rows(("idtext",), site_id=site_id, asset_id=asset_id))


def _changed_assets(mdtz, site_id):
    return (
        Asset.objects.filter(mdtz__gte=mdtz, bu_id=site_id, identifier__isnull=False, enable=True)
        .exclude(identifier="NEA")
        # A probe of bt's primary key per asset: a generic plan would otherwise hash all of bt for a few rows.
        .annotate(servprovname=Subquery(BusinessUnit.objects.filter(id=OuterRef("servprov_id")).values("buname")))
    )


def _site_questionsets(site_id):
    idtext = Cast("id", TextField())
    # Every top-level set of the site, not only those including a changed asset: a site has few, and
    # filtering by the changed assets' ids would send a list as long as the answer.
    # Ranks carry the database's text order of ids and names back to Python.
    return (
        _top_level_questionsets(site_id)
        .filter(assetincludes__isnull=False)
        .annotate(
            idtext=idtext,
            id_rank=Window(DenseRank(), order_by=idtext.asc()),
            name_rank=Window(DenseRank(), order_by=F("qsetname").asc()),
        )
    )


_CHANGED, _SITE_QUESTIONSETS = CompiledQuery(_changed_assets), CompiledQuery(_site_questionsets)


def asset_details(mdtz, site_id):
    assets = _CHANGED.rows(ASSET_COLUMNS, mdtz=mdtz, site_id=site_id)
    if not assets:
        return []
    ids_of, names_of = {}, {}
    for qset in _SITE_QUESTIONSETS.rows(
        ("idtext", "qsetname", "assetincludes", "id_rank", "name_rank"), site_id=site_id
    ):
        for asset_id in set(qset["assetincludes"]):
            ids_of.setdefault(asset_id, set()).add((qset["id_rank"], qset["idtext"]))
            names_of.setdefault(asset_id, set()).add((qset["name_rank"], qset["qsetname"]))
    for asset in assets:
        key = str(asset["id"])
        asset["qsetids"] = " ".join(text for _, text in sorted(ids_of.get(key, ())))
        asset["qsetname"] = "~".join(text for _, text in sorted(names_of.get(key, ())))
    return assets
