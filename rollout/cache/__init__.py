"""The never-stale answer cache: a byte-bounded in-process LRU in front of the shared cache (Redis).

Validity comes from PostgreSQL itself. A statement-level trigger on every table
a cached answer reads bumps that table's generation and NOTIFYs on commit
(triggers.py, installed after every migrate for the tables the registered
experiments and ROLLOUT_CACHE_READS name), whoever writes — Django, psql,
another application. Each process keeps the generations in memory, fed by one
LISTENing connection on a daemon thread (generations.py); a hit needs no
network round trip.

An entry holds the generations of the tables it reads, read *before* computing
it, and answers only while they are still current. A write the computation did
not see commits after that read, so the generation it bumps moves past the
entry's for good (generations only grow): an entry is never stale once its
process has heard of the write, which takes one NOTIFY delivery. The same check
guards both tiers, so a Redis entry written by another process, or one that
survived a Redis stall, is checked too. A table without the trigger has no
generation: what reads it is never cached.

No generations, no cache: while the listener is down (or silent past its
liveness bound) every call computes and nothing is stored; the in-process tier
is cleared when it reconnects. Inside a transaction that has written a watched
table, the database answers too (one query checks, in atomic blocks only): the
cache holds committed answers only, and a transaction must see its own writes.

Keys (answers.py): the entry's name, the version of the code that computes it
(a digest of its source and ROLLOUT_DEPLOY_ID: a deployed change never meets
the previous code's answers), for daily entries the UTC date, and the
parameters. Answers handed out are read-only (frozen.py): a hit copies nothing.
"""

from rollout.cache.answers import MISS, TIERS, cached, peek, version_of, versions

__all__ = ["MISS", "TIERS", "cached", "peek", "version_of", "versions"]
