"""Django's PostgreSQL backend, with a pool that hands out only connections that pass a check.

Django gives psycopg_pool `check=ConnectionPool.check_connection` when
CONN_HEALTH_CHECKS is on, but the pool then backs off (1 s, 2 s, 4 s …) after
every connection that fails its check. After the server terminates the
pool's idle connections, each of them costs a waiting request a second or
more, and a request can run out of DB_POOL_TIMEOUT. Here the pool is built
without that check (settings turn CONN_HEALTH_CHECKS off with the pool) and
each connection is checked with the same check_connection as it is handed
out: a broken one goes straight back to the pool, which discards it and opens
a new one, and the next connection is tried at once.
"""

from time import monotonic

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if not self.pool:
            return super().get_new_connection(conn_params)
        deadline = monotonic() + self.pool.timeout
        while True:
            connection = super().get_new_connection(conn_params)
            try:
                ConnectionPool.check_connection(connection)
            except Exception:  # noqa: BLE001 — whatever broke it, the pool discards a broken connection on return
                self.pool.putconn(connection)
            else:
                return connection
            if monotonic() > deadline:
                raise PoolTimeout(f"couldn't get a working connection after {self.pool.timeout:.2f} sec")
