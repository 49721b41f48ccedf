"""Per-table cache generations kept by PostgreSQL itself (now installed by rollout/cache/triggers.py after every migrate).

A statement-level trigger on every legacy table adds one to that table's
generation and NOTIFYs `query_cache` — for every INSERT, UPDATE, DELETE,
TRUNCATE or COPY, whoever runs it (Django, psql, another application).
NOTIFY is delivered on commit, so listeners hear of a write the moment it is
visible, and never of a write that rolls back. The trigger also marks its
transaction (query_cache.wrote), whose own reads then bypass the cache.

A table's generation is the sum of its rows in query_cache_generation: each
backend adds to its own row (slot = its pid), so concurrent writers never wait
on one another's counter and cannot deadlock on it. query_cache_compact()
folds the rows of ended backends into slot 0 without changing any sum.
"""

from django.db import migrations

TABLES = (
    "typeassist",
    "bt",
    "people",
    "pgroup",
    "pgbelonging",
    "sitepeople",
    "asset",
    "questionset",
    "job",
    "jobneed",
    "jobneeddetails",
    "capability",
)

INSTALL = [
    """
    CREATE TABLE query_cache_generation (
        table_name text NOT NULL,
        slot integer NOT NULL,
        n bigint NOT NULL,
        PRIMARY KEY (table_name, slot)
    )
    """,
    """
    CREATE FUNCTION query_cache_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO query_cache_generation (table_name, slot, n) VALUES (TG_TABLE_NAME, pg_backend_pid(), 1)
        ON CONFLICT (table_name, slot) DO UPDATE SET n = query_cache_generation.n + 1;
        PERFORM pg_notify('query_cache', TG_TABLE_NAME);
        -- Transaction-local: the cache serves this transaction nothing until it ends (it must see its own writes).
        PERFORM set_config('query_cache.wrote', 'on', true);
        RETURN NULL;
    END
    $$
    """,
    # SKIP LOCKED: the rows of writers still in a transaction stay; compaction never waits.
    """
    CREATE FUNCTION query_cache_compact() RETURNS void LANGUAGE sql AS $$
        WITH gone AS (
            DELETE FROM query_cache_generation
            WHERE ctid IN (
                SELECT g.ctid FROM query_cache_generation g
                WHERE g.slot <> 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = g.slot)
                FOR UPDATE SKIP LOCKED
            )
            RETURNING table_name, n
        )
        INSERT INTO query_cache_generation (table_name, slot, n)
        SELECT table_name, 0, sum(n) FROM gone GROUP BY table_name
        ON CONFLICT (table_name, slot) DO UPDATE SET n = query_cache_generation.n + excluded.n
    $$
    """,
] + [
    f"CREATE TRIGGER query_cache_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
    f"FOR EACH STATEMENT EXECUTE FUNCTION query_cache_bump()"
    for table in TABLES
]

DROP = [f"DROP TRIGGER IF EXISTS query_cache_bump ON {table}" for table in TABLES] + [
    "DROP FUNCTION IF EXISTS query_cache_compact()",
    "DROP FUNCTION IF EXISTS query_cache_bump()",
    "DROP TABLE IF EXISTS query_cache_generation",
]


class Migration(migrations.Migration):
    dependencies = [("query_backends", "0003_legacy_functions")]

    operations = [migrations.RunSQL(INSTALL, DROP)]
