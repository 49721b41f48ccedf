"""The database side of the cache: per-table generations kept by PostgreSQL itself.

A statement-level trigger on every watched table adds one to that table's
generation and NOTIFYs `query_cache` — for every INSERT, UPDATE, DELETE,
TRUNCATE or COPY, whoever runs it (Django, psql, another application,
logical replication: it fires ALWAYS, in every session_replication_role).
NOTIFY is delivered on commit, so listeners hear of a write the moment it is
visible, and never of a write that rolls back. The trigger also marks its
transaction (query_cache.wrote), whose own reads then bypass the cache.

A table's generation is the sum of its rows in query_cache_generation: each
backend adds to its own row (slot = its pid), so concurrent writers never wait
on one another's counter and cannot deadlock on it. query_cache_compact()
folds the rows of ended backends into slot 0 without changing any sum.

install() runs after every migrate (post_migrate), on the alias migrated, for
the tables the registered experiments read and ROLLOUT_CACHE_READS names; it is
idempotent. missing() is what the system check rollout.W002 reports.
"""

from django.db import connections

from rollout.conf import get_setting
from rollout.experiments import registry

CHANNEL = "query_cache"
TRIGGER = "query_cache_bump"
FUNCTIONS = (TRIGGER, "query_cache_compact")  # rollout's own: never a host's function to adopt

BASE = [
    """
    CREATE TABLE IF NOT EXISTS query_cache_generation (
        table_name text NOT NULL,
        slot integer NOT NULL,
        n bigint NOT NULL,
        PRIMARY KEY (table_name, slot)
    )
    """,
    """
    CREATE OR REPLACE FUNCTION query_cache_bump() RETURNS trigger LANGUAGE plpgsql AS $$
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
    CREATE OR REPLACE FUNCTION query_cache_compact() RETURNS void LANGUAGE sql AS $$
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
]

# Tables whose trigger exists and fires in every session ('A'), visible on the search path, with their generation.
_WATCHED = f"""
    SELECT c.relname AS table_name
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE t.tgname = '{TRIGGER}' AND t.tgenabled = 'A' AND pg_table_is_visible(c.oid)
"""
WATCHED_GENERATIONS = f"""
    SELECT w.table_name, coalesce(sum(g.n), 0)::bigint
    FROM ({_WATCHED}) w LEFT JOIN query_cache_generation g USING (table_name)
    GROUP BY w.table_name
"""


_BUMP = """
    INSERT INTO query_cache_generation (table_name, slot, n) VALUES (%s, 0, 1)
    ON CONFLICT (table_name, slot) DO UPDATE SET n = query_cache_generation.n + 1
"""


def tables():
    """{table: [what reads it]}: every table a registered experiment or ROLLOUT_CACHE_READS declares."""
    found = {}
    for table in get_setting("CACHE_READS"):
        found.setdefault(table, []).append("ROLLOUT_CACHE_READS")
    experiments = registry() if get_setting("REGISTRY") else None
    for name in experiments.names() if experiments is not None else ():
        for table in getattr(experiments.get(name), "reads", ()):  # optional: an experiment without a cache
            found.setdefault(table, []).append(name)
    return found


def install(using="default", **kwargs):
    """Create the generations and a trigger on every declared table that exists; returns the tables watched."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        for statement in BASE:
            cursor.execute(statement)
        cursor.execute(_WATCHED)
        watched = {row[0] for row in cursor.fetchall()}
        for table in sorted(set(tables()) - watched):  # a trigger in place is left alone: no table lock
            quoted = connection.ops.quote_name(table)
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [quoted])
            if not cursor.fetchone()[0]:
                continue  # not created (yet): the check says so, and nothing reading it is cached
            # Unwatched until now, the table may have been written unheard (its trigger disabled, or the table
            # dropped and created again under its name, which fires no trigger): its generation moves on, so
            # no answer kept under the generation it had before can match again. Before the trigger: no
            # listener sees the table watched under its old generation, even between autocommitted statements.
            cursor.execute(_BUMP, [table])
            cursor.execute(
                f"CREATE OR REPLACE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {quoted} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION query_cache_bump()"
            )
            cursor.execute(f"ALTER TABLE {quoted} ENABLE ALWAYS TRIGGER {TRIGGER}")
            watched.add(table)
    return sorted(watched)


def missing(using="default"):
    """{table: [what reads it]} of declared tables without a trigger firing in every session."""
    declared = tables()
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regclass('query_cache_generation') IS NULL")
        if cursor.fetchone()[0]:
            return {}  # never migrated: the first migrate installs everything, nothing to warn about yet
        cursor.execute(_WATCHED)
        watched = {row[0] for row in cursor.fetchall()}
    return {table: readers for table, readers in declared.items() if table not in watched}
