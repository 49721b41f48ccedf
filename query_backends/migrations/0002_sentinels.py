from django.db import migrations

from query_backends.sentinels import create_sentinels, delete_sentinels


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0001_initial")]

    operations = [migrations.RunPython(create_sentinels, delete_sentinels)]
