"""`rollout adopt` writes a twin stub with the function's signature, its declaration and its test; ruff-clean."""

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from rollout.postgres import adopt, catalog
from rollout.query import param_for

RUFF = Path(sys.executable).parent / "ruff"
RULES = "E,F,W,I,B,UP,DJ,BLE,C4,SIM,RUF"
FUNCTIONS = """
CREATE TABLE adopt_t (id bigint PRIMARY KEY, client_id bigint, at timestamptz, due date);
CREATE FUNCTION fn_open_tickets(client_id bigint, since timestamptz DEFAULT '2000-01-01', "limit" integer DEFAULT 10,
                                tag text DEFAULT 'it''s') RETURNS TABLE (id bigint, due date) LANGUAGE sql STABLE
    AS $$ SELECT id, due FROM adopt_t WHERE client_id = $1 AND at >= $2 LIMIT $3 $$;
CREATE FUNCTION fn_ticket_ids(client_ids bigint[], on_day date) RETURNS bigint[] LANGUAGE sql STABLE
    AS $$ SELECT array_agg(id) FROM adopt_t WHERE client_id = ANY(client_ids) AND due = on_day $$;
CREATE FUNCTION fn_take(client_id bigint) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO adopt_t (id, client_id) VALUES (1, client_id); RETURN 1; END $$;
CREATE FUNCTION fn_unnamed(bigint) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT $1 $$;
CREATE FUNCTION fn_point(p point) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT 1::bigint $$;
"""


@pytest.fixture
def functions(db):
    with connection.cursor() as cursor:
        cursor.execute(FUNCTIONS)


def _scaffold(tmp_path, name):
    function = catalog.find(name)
    app = SimpleNamespace(name="tickets", path=str(tmp_path / "tickets"))
    Path(app.path).mkdir(exist_ok=True)
    return adopt.scaffold(function, [param_for(a) for a in function.arguments], app, function.name)


def _ruff(project):
    for command in (["check", "--isolated", "--select", RULES], ["format", "--isolated", "--check"]):
        ran = subprocess.run([RUFF, *command, "."], cwd=project, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stdout + ran.stderr


def test_adopting_writes_a_ruff_clean_stub_declaration_and_test(functions, tmp_path):
    _scaffold(tmp_path, "fn_open_tickets")
    _scaffold(tmp_path, "fn_ticket_ids")
    _, notes = _scaffold(tmp_path, "fn_take")
    app = tmp_path / "tickets"
    assert sorted(p.name for p in app.iterdir()) == [
        "rollout_queries.py",
        "test_rollout_fn_open_tickets.py",
        "test_rollout_fn_take.py",
        "test_rollout_fn_ticket_ids.py",
        "twins.py",
    ]
    _ruff(tmp_path)
    twins = {f.name: f for f in ast.parse((app / "twins.py").read_text()).body if isinstance(f, ast.FunctionDef)}
    signature = ast.unparse(twins["fn_open_tickets"].args)
    assert signature == 'client_id: int, since: datetime | None=None, limit: int=10, tag: str="it\'s"'
    assert ast.unparse(twins["fn_ticket_ids"].args) == "client_ids: list[int], on_day: date"
    declarations = (app / "rollout_queries.py").read_text()
    assert 'rollout.Query(name="fn_open_tickets", candidate=twins.fn_open_tickets)' in declarations
    assert (
        "This function may write" in declarations
        and "fn_take(bigint) is VOLATILE and its body says INSERT" in (notes[0])
    )
    assert 'query = "fn_ticket_ids"' in (app / "test_rollout_fn_ticket_ids.py").read_text()


def test_what_cannot_be_adopted_is_said_in_one_line(functions, tmp_path, settings):
    settings.BASE_DIR = tmp_path  # no app of the project's own: --app must be named
    for args, message in (
        (["fn_nope", "--app", "rollout"], "function: no function fn_nope"),
        (["fn_unnamed", "--app", "rollout"], r"argument\(s\) arg1 have no name"),
        (["fn_point", "--app", "rollout"], "argument p is of type point, which rollout.Query cannot pass"),
        (["fn_take", "--app", "nope"], "--app: no installed app 'nope'"),
        (["fn_take"], "--app: name the app to write into"),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("rollout", "adopt", *args)
