"""Django's PostgreSQL backend, with a pool that hands out only working connections and fails fast in an outage.

Django gives psycopg_pool `check=ConnectionPool.check_connection` when
CONN_HEALTH_CHECKS is on, but the pool then backs off (1 s, 2 s, 4 s …) after
every connection that fails its check. After the server terminates the
pool's idle connections, each of them costs a waiting request a second or
more, and a request can run out of DB_POOL_TIMEOUT. Here the pool is built
without that check (settings turn CONN_HEALTH_CHECKS off with the pool) and
each connection is checked with the same check_connection as it is handed
out: a broken one goes straight back to the pool, which discards it and opens
a new one, and the next connection is tried at once.

When no working connection comes within DB_POOL_TIMEOUT, one direct
connection attempt (bounded by DB_CONNECT_TIMEOUT) tells a database gone from
a pool busy: gone opens the process's circuit (circuit.py) and every caller
fails at once until a probe connects again; then the pool, whose own
reconnection attempts are backing off, is replaced by a fresh one.
"""

import threading
from time import monotonic

from django.db.backends.postgresql import base
from psycopg import Error as DriverError
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from settings.postgresql.circuit import circuit_for
from settings.postgresql.client import DatabaseClient


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient

    def get_new_connection(self, conn_params):
        if not self.pool:
            return super().get_new_connection(conn_params)
        circuit = circuit_for(self.alias)
        if circuit.open:
            if not circuit.probe_turn():
                raise circuit.refusal()
            try:
                self._connect_directly(conn_params)
            except DriverError as error:
                circuit.failed(error)
                raise circuit.refusal() from error
            self._replace_pool()
            circuit.closed()
        try:
            return self._checked_connection(conn_params)
        except PoolTimeout:
            try:
                self._connect_directly(conn_params)
            except DriverError as error:
                circuit.failed(error)
                raise circuit.refusal() from error
            raise  # the database answers: the pool was busy, and its timeout stands

    def _checked_connection(self, conn_params):
        deadline = monotonic() + self.pool.timeout
        while True:
            try:
                connection = super().get_new_connection(conn_params)
            except PoolClosed:  # replaced by another thread after an outage: take the new one
                if monotonic() > deadline:
                    raise
                continue
            try:
                ConnectionPool.check_connection(connection)
            except Exception:  # noqa: BLE001 — whatever broke it, the pool discards a broken connection on return
                self.pool.putconn(connection)
            else:
                return connection
            if monotonic() > deadline:
                raise PoolTimeout(f"couldn't get a working connection after {self.pool.timeout:.2f} sec")

    def _connect_directly(self, conn_params):
        """A connection outside the pool, closed at once: does the database accept connections now?"""
        self.Database.connect(**conn_params).close()

    def _replace_pool(self):
        """A fresh pool connects at once; the old one's connections died with the outage and its own attempts
        wait out their back-off. It is closed on a thread of its own (closing waits for its workers)."""
        old = self._connection_pools.pop(self.alias, None)
        if old is not None:
            threading.Thread(target=old.close, name="replaced-pool-close", daemon=True).start()
