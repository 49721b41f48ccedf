"""Install the nine legacy PL/pgSQL functions from query_backends/sql/; the reverse drops them.

The functions are CREATE OR REPLACE: a later change to a .sql file ships with a
new migration that runs install_sql() again.
"""

from django.db import migrations

from query_backends.functions import drop_sql, install_sql


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0002_sentinels")]

    operations = [migrations.RunSQL(install_sql(), drop_sql())]
