"""The legacy `id = -1` / `NONE` rows that foreign keys point at to say "no value"."""

from django.db import DEFAULT_DB_ALIAS

SENTINEL_ID = -1
EPOCH = "2000-01-01T00:00:00Z"
SENTINEL_MODELS = ("BusinessUnit", "People", "PeopleGroup", "Asset", "QuestionSet", "Capability")


def _alias(schema_editor):
    """The database being migrated (a migration's), else the default (a reset)."""
    return schema_editor.connection.alias if schema_editor is not None else DEFAULT_DB_ALIAS


def create_sentinels(apps, schema_editor=None):
    """Works with a migration's historical apps and with the live registry alike, on the alias being migrated."""
    stamps = {"id": SENTINEL_ID, "cdtz": EPOCH, "mdtz": EPOCH, "enable": True}
    using = _alias(schema_editor)
    model = lambda name: apps.get_model("query_backends", name).objects.using(using)  # noqa: E731
    model("BusinessUnit").create(bucode="NONE", buname="NONE", ctzoffset=0, **stamps)
    model("People").create(peoplecode="NONE", peoplename="NONE", people_extras={}, **stamps)
    model("PeopleGroup").create(groupname="NONE", **stamps)
    model("Asset").create(
        uuid="00000000-0000-0000-0000-000000000000",
        assetcode="NONE",
        assetname="NONE",
        identifier="NONE",
        ctzoffset=0,
        **stamps,
    )
    model("QuestionSet").create(qsetname="NONE", type="NONE", assetincludes=[], **stamps)
    model("Capability").create(capscode="NONE", capsname="NONE", cfor="NONE", **stamps)


def delete_sentinels(apps, schema_editor=None):
    for name in reversed(SENTINEL_MODELS):
        apps.get_model("query_backends", name).objects.using(_alias(schema_editor)).filter(id=SENTINEL_ID).delete()
