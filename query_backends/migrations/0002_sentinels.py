"""The legacy `id = -1` / `NONE` rows that foreign keys point at to say "no value"."""

from django.db import migrations

SENTINEL = -1
EPOCH = "2000-01-01T00:00:00Z"


def create_sentinels(apps, schema_editor):
    stamps = {"cdtz": EPOCH, "mdtz": EPOCH}
    apps.get_model("query_backends", "BusinessUnit").objects.create(
        id=SENTINEL, bucode="NONE", buname="NONE", enable=True, ctzoffset=0, **stamps
    )
    apps.get_model("query_backends", "People").objects.create(
        id=SENTINEL, peoplecode="NONE", peoplename="NONE", enable=True, people_extras={}, **stamps
    )
    apps.get_model("query_backends", "PeopleGroup").objects.create(
        id=SENTINEL, groupname="NONE", enable=True, **stamps
    )
    apps.get_model("query_backends", "Asset").objects.create(
        id=SENTINEL,
        uuid="00000000-0000-0000-0000-000000000000",
        assetcode="NONE",
        assetname="NONE",
        identifier="NONE",
        enable=True,
        ctzoffset=0,
        **stamps,
    )
    apps.get_model("query_backends", "QuestionSet").objects.create(
        id=SENTINEL, qsetname="NONE", type="NONE", enable=True, assetincludes=[], **stamps
    )
    apps.get_model("query_backends", "Capability").objects.create(
        id=SENTINEL, capscode="NONE", capsname="NONE", cfor="NONE", enable=True, **stamps
    )


def delete_sentinels(apps, schema_editor):
    for model in ("Capability", "QuestionSet", "Asset", "PeopleGroup", "People", "BusinessUnit"):
        apps.get_model("query_backends", model).objects.filter(id=SENTINEL).delete()


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0001_initial")]

    operations = [migrations.RunPython(create_sentinels, delete_sentinels)]
