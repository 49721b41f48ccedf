"""gunicorn's configuration for serving pg-retire in production (docs/operations.md, "Serving in production").

gunicorn reads this file by itself when started from the project directory:

    .venv/bin/gunicorn settings.wsgi

Anything here can be overridden on the command line or in GUNICORN_CMD_ARGS, e.g.
`GUNICORN_CMD_ARGS="--workers 4 --bind 0.0.0.0:8000"`.
"""

bind = "127.0.0.1:8000"
workers = 2
# Threaded workers: a connection is handed to a thread only once its request has arrived, so a client
# that connects and says nothing (or sends half a request) waits in the worker's poller and holds no
# thread; a sync worker would be held until `timeout` killed it. Each thread takes its own database
# connection: keep threads + ROLLOUT_SHADOW_WORKERS under DB_POOL_MAX_SIZE (10 by default).
worker_class = "gthread"
threads = 4
# A worker whose main loop is silent this long is stuck: it is killed (SIGABRT, then SIGKILL) and replaced.
# With threads the main loop keeps beating while requests run, so only a real hang gets here.
timeout = 30
# SIGTERM (a deploy, a scale-down): workers stop accepting, finish their requests, then worker_exit below
# drains the shadow queue for up to ROLLOUT_SHADOW_DRAIN_SECONDS (10 s) — all within this.
graceful_timeout = 30
# Behind a proxy that keeps connections open; idle ones beyond this are closed.
keepalive = 5
# gunicorn's control socket is one path per user (~/.gunicorn/gunicorn.ctl): a second server on the machine
# would take it over from the first. Nothing here uses it.
control_socket_disable = True


def worker_exit(server, worker):
    """In the worker, as it exits for any reason gunicorn sees: finish or count its queued comparisons and
    write its unflushed metrics, so a restart loses nothing uncounted."""
    import rollout

    rollout.shutdown()
