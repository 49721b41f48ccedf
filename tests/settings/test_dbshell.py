import os

from settings.environment import database_config
from tests.rollout_helpers import ROOT, manage


def test_dbshell_reaches_the_project_database_without_a_psql_on_the_path(tmp_path):
    # docs/lifecycle.md changes a server setting through dbshell: it must work where no PostgreSQL client is
    # installed (the embedded cluster's case) and reach the database the settings name, not libpq's default.
    done = manage("dbshell", "--", "-tAc", "SELECT current_database()", environ={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    # From the environment: the test run has renamed the settings' database to its test database.
    assert done.stdout.strip() == database_config(os.environ, ROOT)["NAME"]
