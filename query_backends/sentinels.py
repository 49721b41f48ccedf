"""The legacy `id = -1` / `NONE` rows that foreign keys point at to say "no value"."""

SENTINEL_ID = -1
EPOCH = "2000-01-01T00:00:00Z"
SENTINEL_MODELS = ("BusinessUnit", "People", "PeopleGroup", "Asset", "QuestionSet", "Capability")


def create_sentinels(apps, schema_editor=None):
    """Works with a migration's historical apps and with the live registry alike."""
    stamps = {"id": SENTINEL_ID, "cdtz": EPOCH, "mdtz": EPOCH, "enable": True}
    model = lambda name: apps.get_model("query_backends", name)  # noqa: E731
    model("BusinessUnit").objects.create(bucode="NONE", buname="NONE", ctzoffset=0, **stamps)
    model("People").objects.create(peoplecode="NONE", peoplename="NONE", people_extras={}, **stamps)
    model("PeopleGroup").objects.create(groupname="NONE", **stamps)
    model("Asset").objects.create(
        uuid="00000000-0000-0000-0000-000000000000",
        assetcode="NONE",
        assetname="NONE",
        identifier="NONE",
        ctzoffset=0,
        **stamps,
    )
    model("QuestionSet").objects.create(qsetname="NONE", type="NONE", assetincludes=[], **stamps)
    model("Capability").objects.create(capscode="NONE", capsname="NONE", cfor="NONE", **stamps)


def delete_sentinels(apps, schema_editor=None):
    for name in reversed(SENTINEL_MODELS):
        apps.get_model("query_backends", name).objects.filter(id=SENTINEL_ID).delete()
