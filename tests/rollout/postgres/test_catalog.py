"""rollout.postgres.catalog reads a function's signature, shape and whether it may write from pg_proc."""

import pytest
from django.db import connection

from rollout.postgres import catalog

FUNCTIONS = """
CREATE TABLE adopt_ticket (id bigserial PRIMARY KEY, client_id bigint NOT NULL, closed boolean NOT NULL);
CREATE FUNCTION adopt_count(p_client bigint, p_open boolean DEFAULT true, p_tag text DEFAULT 'a,b') RETURNS bigint
    LANGUAGE sql STABLE AS $$ SELECT count(*) FROM adopt_ticket WHERE client_id = p_client AND closed <> p_open $$;
CREATE FUNCTION adopt_ids(bigint) RETURNS bigint[] LANGUAGE sql STABLE
    AS $$ SELECT array_agg(id ORDER BY id) FROM adopt_ticket WHERE client_id = $1 $$;
CREATE FUNCTION adopt_json(p_client bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION adopt_setof(p_client bigint) RETURNS SETOF bigint LANGUAGE sql STABLE
    AS $$ SELECT id FROM adopt_ticket $$;
CREATE FUNCTION adopt_table(p_client bigint) RETURNS TABLE (id bigint, closed boolean) LANGUAGE sql STABLE
    AS $$ SELECT id, closed FROM adopt_ticket $$;
CREATE FUNCTION adopt_reads(p_client bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN -- an update in a comment does not write
    RETURN (SELECT count(*) FROM adopt_ticket WHERE client_id = p_client AND 'delete' <> '');
END $$;
CREATE FUNCTION adopt_open(p_client bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO adopt_ticket (client_id, closed) VALUES (p_client, false);
    RETURN p_client;
END $$;
CREATE FUNCTION adopt_calls_open(p_client bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT adopt_open(p_client) $$;
CREATE FUNCTION adopt_today(p_client bigint) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM adopt_ticket WHERE client_id = p_client AND id > extract(doy FROM current_date) $$;
CREATE FUNCTION adopt_calls_today(p_client bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN -- now() in a comment, and 'random()' in a string, change nothing
    RETURN adopt_today(p_client) + length('random()');
END $$;
CREATE FUNCTION adopt_over(bigint) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT $1 $$;
CREATE FUNCTION adopt_over(text) RETURNS text LANGUAGE sql STABLE AS $$ SELECT $1 $$;
"""


@pytest.fixture
def functions(db):
    with connection.cursor() as cursor:
        cursor.execute(FUNCTIONS)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("adopt_count", catalog.SCALAR),
        ("adopt_ids", catalog.ARRAY),
        ("adopt_json", catalog.JSON),
        ("adopt_setof", catalog.SETOF),
        ("adopt_table", catalog.TABLE),
    ],
)
def test_the_return_shape_is_read_from_pg_proc(functions, name, shape):
    assert catalog.find(name).shape == shape


def test_arguments_their_types_and_defaults(functions):
    function = catalog.find("adopt_count")
    assert function.arguments == (
        catalog.Argument("p_client", "bigint", None),
        catalog.Argument("p_open", "boolean", "true"),
        catalog.Argument("p_tag", "text", "'a,b'::text"),
    )
    assert catalog.find("adopt_ids").arguments == (catalog.Argument("arg1", "bigint", None),)
    assert catalog.find("adopt_table").columns == (("id", "bigint"), ("closed", "boolean"))


def test_missing_and_overloaded_functions_are_named(functions):
    with pytest.raises(catalog.FunctionNotFound, match="no function adopt_nope"):
        catalog.find("adopt_nope")
    with pytest.raises(catalog.FunctionNotFound, match=r"overloaded \(adopt_over\(bigint\), adopt_over\(text\)\)"):
        catalog.find("adopt_over")
    assert catalog.find("adopt_over(text)").return_type == "text"
    assert catalog.find("public.adopt_json").schema == "public"


def test_a_function_that_inserts_may_write_and_one_that_reads_does_not(functions):
    assert catalog.writes(catalog.find("adopt_count")) is None  # STABLE: PostgreSQL refuses writes in it
    assert catalog.writes(catalog.find("adopt_reads")) is None  # volatile, but its body only reads
    assert "body says INSERT" in catalog.writes(catalog.find("adopt_open"))
    assert "calls adopt_open(bigint), which may write" in catalog.writes(catalog.find("adopt_calls_open"))


def test_a_function_that_reads_the_clock_may_answer_differently_and_one_that_reads_rows_does_not(functions):
    assert catalog.varies(catalog.find("adopt_count")) is None
    assert catalog.varies(catalog.find("adopt_reads")) is None
    assert catalog.varies(catalog.find("adopt_today")) == "adopt_today(bigint) reads current_date"
    assert "calls adopt_today(bigint), which may answer differently" in catalog.varies(
        catalog.find("adopt_calls_today")
    )


def test_every_function_outside_the_system_schemas_is_listed(functions):
    names = {f.name for f in catalog.functions()}
    assert {"adopt_count", "adopt_open", "fn_get_bulist"} <= names
    assert not {"now", "count"} & names
    assert not {"query_cache_bump", "query_cache_compact"} & names  # rollout's own, installed by migrate
