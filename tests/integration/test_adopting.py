"""docs/adopting.md, followed as written: the wheel in a fresh `django-admin startproject`, a function adopted,
compared in shadow, a deliberately wrong twin recorded and the guard sending it back, then the right twin rolled
out and the function retired by the migration `rollout retire` writes into the host's app, and migrated back.

The code blocks of the doc are taken from it, section by section, and run in order: a step that stops
working there fails here.
"""

import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.db import connection

from tests.rollout_helpers import ROOT, committed

pytestmark = pytest.mark.django_db
DOC = ROOT / "docs" / "adopting.md"


def sections():
    """{heading: [code blocks]} of the doc; a code block is a run of lines indented four spaces (or more)."""
    found, heading, block = {}, None, []
    for line in [*DOC.read_text().splitlines(), ""]:
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line)
            continue
        if block:
            found[heading].append(textwrap.dedent("\n".join(block)).strip() + "\n")
            block = []
        if line.startswith("## "):
            heading = line[3:].strip()
            found[heading] = []
    return found


def _execute(sql):
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # dropping a database takes a while on a busy machine
        cursor.execute(sql)


class Host:
    """A fresh project: its own virtualenv (the wheel, and this interpreter's packages for its dependencies)."""

    def __init__(self, root, database):
        self.root, self.project = root, root / "project"
        self.python = root / "venv" / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
        self.database = database

    def run(self, *args, cwd=None, check=True):
        ran = subprocess.run(
            [str(a) for a in args], cwd=cwd or self.project, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check:
            assert ran.returncode == 0, f"{args}:\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}"
        return ran

    def manage(self, *args, check=True):
        return self.run(self.python, "manage.py", *args, check=check)

    def shell(self, code):
        return self.manage("shell", "-v", "0", "-c", textwrap.dedent(code)).stdout

    def commands(self, block):
        """Run a doc block of `python manage.py …` lines; returns what each printed (stdout and stderr)."""
        ran = [self.manage(*line.split()[2:]) for line in block.splitlines() if line.startswith("python ")]
        return [r.stdout + r.stderr for r in ran]


@pytest.fixture
def host(tmp_path):
    name = f"h_adopting_{uuid.uuid4().hex[:8]}"
    committed(_execute, f"CREATE DATABASE {name}")
    try:
        yield Host(tmp_path, name)
    finally:
        committed(_execute, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_stranger_adopts_a_function_by_the_doc(host):
    doc = sections()
    # 1. Install: the wheel of this repository, into the host's own environment.
    dist = host.root / "dist"
    host.run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT, cwd=host.root)
    host.run(sys.executable, "-m", "venv", host.root / "venv", cwd=host.root)
    site = next((host.root / "venv" / "lib").glob("python3*/site-packages"))
    dependencies = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "django").is_dir())
    (site / "dependencies.pth").write_text(dependencies + "\n")  # the packages only: not this checkout
    [wheel] = dist.glob("pg_retire-*.whl")
    host.run(host.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=host.root)
    host.project.mkdir()
    host.run(host.python, "-m", "django", "startproject", "mysite", ".")
    host.manage("startapp", "tickets")
    located = host.run(host.python, "-c", "import rollout; print(rollout.__file__)").stdout
    assert located.startswith(str(site)), located  # rollout comes from the wheel

    # 2. Settings and 3. URLs, as the doc writes them; the database is this test's own.
    settings = host.project / "mysite" / "settings.py"
    db = connection.settings_dict
    settings.write_text(
        settings.read_text()
        + f"\nDATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql', 'NAME': {host.database!r}, "
        f"'HOST': {db['HOST']!r}, 'PORT': {db['PORT']!r}, 'USER': {db['USER']!r}}}}}\n"
        + "INSTALLED_APPS += ['tickets']\n"
        # Step 9's note: compare every asked call (the shadow budget would sample fewer than the guard's minimum).
        + "ROLLOUT_SHADOW_BUDGET = 0\n"
        + doc["2. Settings"][0]
    )
    urls = host.project / "mysite" / "urls.py"
    urls.write_text(urls.read_text() + "\n" + doc["3. URLs"][0])

    # 6. The function, in a migration of the app, beside its model.
    (host.project / "tickets" / "models.py").write_text(
        "from django.db import models\n\n\nclass Ticket(models.Model):\n"
        "    client_id = models.BigIntegerField()\n    closed = models.BooleanField(default=False)\n"
    )
    host.manage("makemigrations", "tickets")
    host.manage("makemigrations", "tickets", "--empty", "--name", "fn_open_tickets")
    [migration] = (host.project / "tickets" / "migrations").glob("0002_*.py")
    function_block = doc["6. Your function"][0]
    text, replaced = re.subn(
        r"    operations = \[\s*\]\n", textwrap.indent(function_block, "    "), migration.read_text()
    )
    assert replaced == 1, text
    migration.write_text(text)
    listing = "".join(host.commands(doc["6. Your function"][1]))
    assert re.search(r"fn_open_tickets\(bigint\)\s+bigint\s+stable\s+reads only\s+-", listing), listing

    # 7. Adopt it: the stub, the declaration and the test, ruff-clean.
    [adopted] = host.commands(doc["7. Adopt it"][0])
    assert "wrote" in adopted and "refused" not in adopted
    app = host.project / "tickets"
    ruff = Path(sys.executable).parent / "ruff"
    generated = ["tickets/twins.py", "tickets/rollout_queries.py", "tickets/test_rollout_fn_open_tickets.py"]
    host.run(ruff, "check", "--isolated", "--select", "E,F,W,I,B,UP,DJ,BLE,C4,SIM,RUF", *generated)
    host.run(ruff, "format", "--isolated", "--check", *generated)
    assert (
        'rollout.Query(name="fn_open_tickets", candidate=twins.fn_open_tickets)'
        in (app / "rollout_queries.py").read_text()
    )
    assert host.manage("test", "tickets", check=False).returncode != 0  # the stub is no twin yet

    # 8. The twin, as the doc writes it; the check and the generated test pass.
    (app / "twins.py").write_text(doc["8. Write the twin"][0])
    checked, tested = host.commands(doc["8. Write the twin"][1])
    assert "no issues" in checked
    assert "Ran 1 test" in tested and "\nOK\n" in tested, tested

    # 9. Calls go through rollout; every one compared in shadow, and the twin agrees.
    shadow, status = host.commands(doc["9. Route the calls and compare in shadow"][1])
    assert "shadow 100" in shadow and "fn_open_tickets" in status
    calls = """
        import rollout
        from tickets.models import Ticket
        Ticket.objects.bulk_create([Ticket(client_id=1), Ticket(client_id=1, closed=True), Ticket(client_id=2)])
        print([rollout.dispatch("fn_open_tickets", client_id=c) for c in (1, 2, 3)])
    """
    assert host.shell(calls).strip() == "[1, 1, 0]"
    compared = host.shell("""
        from rollout.models import Discrepancy, RecordedComparison
        print(RecordedComparison.objects.count(), Discrepancy.objects.count())
    """).split()
    assert compared == ["3", "0"], compared  # three calls compared, no discrepancy

    # 10. Cache its answers: the declaration names the table, migrate puts the trigger on it; the twin serving,
    # a repeated call is a hit, and a committed write is seen by the next call once heard.
    declaration = app / "rollout_queries.py"
    generated = 'rollout.register(rollout.Query(name="fn_open_tickets", candidate=twins.fn_open_tickets))\n'
    assert generated in declaration.read_text()
    declaration.write_text(declaration.read_text().replace(generated, doc["10. Cache its answers (optional)"][0]))
    _, checked = host.commands(doc["10. Cache its answers (optional)"][1])
    assert "no issues" in checked, checked
    host.manage("rollout", "enable", "fn_open_tickets")
    cached = host.shell("""
        import time
        import rollout
        from tickets.models import Ticket
        calls = [rollout.dispatch("fn_open_tickets", client_id=1) for _ in range(2)]
        print(calls, rollout.last_decision().backend, rollout.last_decision().cache_hit)
        Ticket.objects.create(client_id=1)  # committed (autocommit): the trigger's NOTIFY retires the answer
        deadline = time.monotonic() + 30
        while rollout.dispatch("fn_open_tickets", client_id=1) == calls[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        now_open = Ticket.objects.filter(client_id=1, closed=False).count()
        print(rollout.dispatch("fn_open_tickets", client_id=1), now_open)
        Ticket.objects.filter(client_id=1).order_by("-id")[0].delete()
    """).splitlines()
    assert cached == ["[1, 1] twin True", "2 2"], cached

    # A deliberately wrong twin (it counts closed tickets too), serving everyone: recorded, and the guard trips.
    (app / "twins.py").write_text(
        doc["8. Write the twin"][0].replace("filter(client_id=client_id, closed=False)", "filter(client_id=client_id)")
    )
    host.manage("rollout", "enable", "fn_open_tickets")
    served = host.shell("""
        import rollout
        print(sorted({rollout.dispatch("fn_open_tickets", client_id=1) for _ in range(60)}))
    """)
    assert served.strip().endswith("[1, 2]") or served.strip().endswith("[2]"), served  # wrong until sent back
    found = host.shell("""
        from rollout.models import Discrepancy, QueryFlag
        d = Discrepancy.objects.get(query="fn_open_tickets")
        flag = QueryFlag.objects.get(name="rollout.fn_open_tickets")
        print(d.kind, d.latest().params, flag.everyone, flag.guard_tripped_at is not None)
    """)
    assert found.split() == ["mismatch", "{'client_id':", "1}", "False", "True"], found
    assert "tripped" in host.manage("rollout", "status").stdout
    assert host.shell('import rollout; print(rollout.dispatch("fn_open_tickets", client_id=1))').strip() == "1"

    # 11. The right twin again, for everyone; retired (forced: it has served for seconds, not a week).
    (app / "twins.py").write_text(doc["8. Write the twin"][0])
    host.manage("rollout", "clear-guard", "fn_open_tickets")
    host.manage("rollout", "enable", "fn_open_tickets")
    check, retire, migrate = doc["11. Retire the function"][0].splitlines()
    assert host.manage(*check.split()[2:], check=False).returncode == 1  # not ready: it says why, exit 1
    written = host.manage(*retire.split()[2:], "--force").stdout
    [migration] = (app / "migrations").glob("0003_retire_fn_open_tickets.py")
    assert str(migration) in written
    host.manage(*migrate.split()[2:])
    gone = """
        import rollout
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure('fn_open_tickets(bigint)') IS NULL")
            print(cursor.fetchone()[0], [rollout.dispatch("fn_open_tickets", client_id=c) for c in (1, 2, 3)],
                  rollout.last_decision().rule)
    """
    assert host.shell(gone).split() == ["True", "[1,", "1,", "0]", "retired"]
    assert host.manage("check").returncode == 0 and "retired" in host.manage("rollout", "status").stdout
    host.manage("migrate", "tickets", "0002")
    back = """
        import rollout
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT fn_open_tickets(1)")
            print(cursor.fetchone()[0], rollout.dispatch("fn_open_tickets", client_id=1), rollout.last_decision().rule)
    """
    assert host.shell(back).split() == ["1", "1", "everyone"]
