"""Twins of fn_getassetvsquestionset and fn_getassetdetails.

Text ordering (names and ids-as-text) is always done by the database, under
its collation, never by Python's sort: that is what the legacy functions did.
"""

from django.db.models import F, TextField, Window
from django.db.models.functions import Cast, DenseRank

from query_backends.models import SENTINEL_ID, Asset, QuestionSet
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
        .annotate(servprovname=F("servprov__buname"))
    )


def _including(site_id, asset_ids):
    idtext = Cast("id", TextField())
    # Ranks carry the database's text order of ids and names back to Python.
    return (
        _top_level_questionsets(site_id)
        .filter(assetincludes__overlap=asset_ids)
        .annotate(
            idtext=idtext,
            id_rank=Window(DenseRank(), order_by=idtext.asc()),
            name_rank=Window(DenseRank(), order_by=F("qsetname").asc()),
        )
    )


_CHANGED, _INCLUDING = CompiledQuery(_changed_assets), CompiledQuery(_including)


def asset_details(mdtz, site_id):
    assets = _CHANGED.rows(ASSET_COLUMNS, mdtz=mdtz, site_id=site_id)
    if not assets:
        return []
    asset_ids = [str(asset["id"]) for asset in assets]
    ids_of, names_of = {}, {}
    for qset in _INCLUDING.rows(
        ("idtext", "qsetname", "assetincludes", "id_rank", "name_rank"), site_id=site_id, asset_ids=asset_ids
    ):
        for asset_id in set(qset["assetincludes"]):
            ids_of.setdefault(asset_id, set()).add((qset["id_rank"], qset["idtext"]))
            names_of.setdefault(asset_id, set()).add((qset["name_rank"], qset["qsetname"]))
    for asset, key in zip(assets, asset_ids):
        asset["qsetids"] = " ".join(text for _, text in sorted(ids_of.get(key, ())))
        asset["qsetname"] = "~".join(text for _, text in sorted(names_of.get(key, ())))
    return assets
