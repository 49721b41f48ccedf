"""`manage.py dbshell`: the system's psql, else the one pgserver ships — so the embedded PostgreSQL needs no
PostgreSQL client installed, and `dbshell -- -c "…"` reaches the project's database whichever it is."""

import importlib.util
import shutil
from pathlib import Path

from django.db.backends.postgresql import client


def psql():
    found = shutil.which("psql")
    if found:
        return found
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "psql"
        if bundled.exists():
            return str(bundled)
    return "psql"  # Django then says it cannot find psql on the path


class DatabaseClient(client.DatabaseClient):
    executable_name = psql()
