import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from settings import environment as env
from tests.rollout_helpers import manage

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres://postgres@127.0.0.1:5432/app"


def no_embedded(_):
    raise AssertionError("the embedded server must not start when DATABASE_URL is set")


@pytest.mark.smoke
@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgres://u@h:notaport/db", "postgres://u@h:5432/", "::"])
def test_malformed_database_url_names_the_variable(url):
    with pytest.raises(env.ConfigurationError, match="DATABASE_URL"):
        env.database_config({"DATABASE_URL": url}, ROOT, start_embedded=no_embedded)


@pytest.mark.smoke
@pytest.mark.parametrize("url", ["http://localhost:6379", "redis://:6379/0", "redis://h:port/0", "redis://h:6379/x"])
def test_malformed_redis_url_names_the_variable(url):
    with pytest.raises(env.ConfigurationError, match="REDIS_URL"):
        env.cache_config({"REDIS_URL": url})


def test_database_url_sets_pool_and_statement_timeout():
    config = env.database_config(
        {"DATABASE_URL": PG, "DB_STATEMENT_TIMEOUT_MS": "1234", "DB_POOL_MAX_SIZE": "7"}, ROOT, no_embedded
    )
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("127.0.0.1", 5432, "app")
    assert config["OPTIONS"]["options"] == "-c statement_timeout=1234"
    assert config["OPTIONS"]["pool"]["max_size"] == 7
    no_pool = env.database_config({"DATABASE_URL": PG, "DB_POOL": "false"}, ROOT, no_embedded)
    assert "pool" not in no_pool["OPTIONS"] and no_pool["CONN_MAX_AGE"] == 60


@pytest.mark.smoke
def test_production_refuses_the_embedded_server():
    with pytest.raises(env.ConfigurationError, match="DATABASE_URL must name the database when DJANGO_ENV=production"):
        env.database_config({}, ROOT, start_embedded=no_embedded, production=True)
    assert env.database_config({"DATABASE_URL": PG}, ROOT, no_embedded, production=True)["NAME"] == "app"


def test_unset_database_url_starts_the_embedded_server(tmp_path):
    started = []

    def fake_start(data_dir):
        started.append(data_dir)
        return f"postgresql://postgres:@/postgres?host={data_dir}"

    config = env.database_config({"EMBEDDED_PG_DIR": str(tmp_path)}, ROOT, start_embedded=fake_start)
    assert started == [tmp_path]
    assert config["HOST"] == str(tmp_path) and config["NAME"] == "postgres"


def _start_embedded(data_dir):
    """A command's start-up, in a process of its own: the server outlives it (the next command reuses it)."""
    code = (
        f"from pathlib import Path; from settings.embedded_postgres import start; print(start(Path({str(data_dir)!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_documented_stop_ends_the_embedded_postgres_and_the_next_command_starts_it_again(tmp_path):
    import psycopg

    from tests.docs.blocks import blocks

    (stop,) = [b.text for b in blocks(ROOT / "docs" / "configuration.md") if "postmaster.pid" in b.text]
    data = tmp_path / ".data" / "pgdata"  # where the doc's command looks, from the project's root
    pid_file = data / "postmaster.pid"
    try:
        with psycopg.connect(_start_embedded(data), autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        pid = int(pid_file.read_text().split()[0])
        assert _running(pid)  # the command that started it has exited; the server has not
        subprocess.run(["bash", "-c", stop], cwd=tmp_path, check=True, timeout=30)
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_file.exists() and not _running(pid)
        with psycopg.connect(_start_embedded(data)) as connection:  # started again, with its data
            assert connection.execute("SELECT n FROM kept").fetchone() == (7,)
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except FileNotFoundError:
        return False


@pytest.mark.smoke
def test_redis_url_selects_django_redis_and_unset_selects_local_memory():
    assert env.cache_config({})["BACKEND"].endswith("LocMemCache")
    redis = env.cache_config({"REDIS_URL": "redis://127.0.0.1:6379/2"})
    assert redis["BACKEND"] == "django_redis.cache.RedisCache"
    assert redis["OPTIONS"]["IGNORE_EXCEPTIONS"] is True


@pytest.mark.smoke
def test_production_refuses_the_development_secret():
    with pytest.raises(env.ConfigurationError, match="SECRET_KEY"):
        env.secret_key({}, production=True)
    with pytest.raises(env.ConfigurationError, match="SECRET_KEY"):
        env.secret_key({"SECRET_KEY": env.DEVELOPMENT_SECRET_KEY}, production=True)
    strong = "p" * 30 + "Q9#xL2!vR7&mZ4@kT1^wN8*bF5"
    assert env.secret_key({"SECRET_KEY": strong}, production=True) == strong
    for weak in ("s3cret", "a" * 80, "django-insecure-" + strong):
        with pytest.raises(env.ConfigurationError, match="SECRET_KEY is weak"):
            env.secret_key({"SECRET_KEY": weak}, production=True)
    assert env.secret_key({"SECRET_KEY": "s3cret"}, production=False) == "s3cret"
    assert env.secret_key({}, production=False) == env.DEVELOPMENT_SECRET_KEY


@pytest.mark.smoke
def test_bad_scalar_variables_name_themselves():
    with pytest.raises(env.ConfigurationError, match="DEBUG"):
        env.env_bool({"DEBUG": "maybe"}, "DEBUG", False)
    with pytest.raises(env.ConfigurationError, match="DB_POOL_MAX_SIZE"):
        env.env_int({"DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE", 10, minimum=1)
    with pytest.raises(env.ConfigurationError, match="DJANGO_ENV"):
        env.environment_name({"DJANGO_ENV": "staging"})
    assert env.env_list({"ALLOWED_HOSTS": "a.example, b.example"}, "ALLOWED_HOSTS", []) == ["a.example", "b.example"]


@pytest.mark.smoke
def test_bad_log_level_pool_sizes_and_metrics_addresses_name_themselves():
    assert env.log_level({"LOG_LEVEL": "warning"}) == "WARNING" and env.log_level({}) == "INFO"
    with pytest.raises(env.ConfigurationError, match="LOG_LEVEL='LOUD'"):
        env.log_level({"LOG_LEVEL": "loud"})
    with pytest.raises(env.ConfigurationError, match=r"DB_POOL_MIN_SIZE=20 must be at most DB_POOL_MAX_SIZE \(10\)"):
        env.database_config({"DATABASE_URL": PG, "DB_POOL_MIN_SIZE": "20"}, ROOT, no_embedded)
    assert env.env_networks({"IPS": "10.0.0.0/8, ::1"}, "IPS", []) == ["10.0.0.0/8", "::1"]
    with pytest.raises(env.ConfigurationError, match="IPS: 'notanip' is not an IP address or network"):
        env.env_networks({"IPS": "127.0.0.1,notanip"}, "IPS", [])


@pytest.mark.smoke
@pytest.mark.parametrize(
    "variable,value",
    [
        ("DATABASE_URL", "mysql://x@y/z"),
        ("REDIS_URL", "http://nope"),
        ("LOG_LEVEL", "LOUD"),
        ("DB_POOL_MIN_SIZE", "20"),
        ("ROLLOUT_METRICS_ALLOWED_IPS", "notanip"),
    ],
)
def test_manage_py_reports_a_bad_variable_in_one_line(variable, value):
    environ = {**os.environ, "DATABASE_URL": PG, variable: value}
    result = manage("check", environ=environ)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0]


@pytest.mark.smoke
def test_a_unix_socket_redis_url_is_the_cache_and_the_broker_as_kombu_spells_it():
    url = "unix:///run/redis/redis.sock?db=3"
    assert env.cache_config({"REDIS_URL": url})["LOCATION"] == url
    assert env.broker_url({"REDIS_URL": url}) == "redis+socket:///run/redis/redis.sock?virtual_host=3"
    assert env.broker_url({"REDIS_URL": "redis://127.0.0.1:6379/2"}) == "redis://127.0.0.1:6379/2"
    for bad, problem in [("unix://", "no socket path"), ("unix:///run/redis.sock?db=x", "'x' is not a number")]:
        with pytest.raises(env.ConfigurationError, match=problem):
            env.cache_config({"REDIS_URL": bad})


SOCKET_CHECK = """
import django
django.setup()
from django.core.cache import cache
from settings.celery import app
cache.set("unix-socket-check", 41 + 1)
with app.connection_for_write() as broker:
    broker.ensure_connection(max_retries=1)
    broker.default_channel.client.set("unix-socket-broker-check", 1)
print(cache.get("unix-socket-check"), broker.transport_cls)
"""


def test_a_unix_socket_redis_serves_the_cache_and_the_broker(tmp_path):
    """A private redis-server listening only on a socket of this test's own, stopped by its pid."""
    import redis

    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(socket_path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            time.sleep(0.05)
        environ = {**os.environ, "DATABASE_URL": PG, "REDIS_URL": f"unix://{socket_path}?db=3"}
        environ.pop("CELERY_BROKER_URL", None)
        result = subprocess.run(
            [sys.executable, "-c", SOCKET_CHECK], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == ["42", "redis"]
        client = redis.Redis(unix_socket_path=str(socket_path), db=3)
        assert client.get("unix-socket-broker-check") == b"1"  # the broker used db 3 of the socket's server
    finally:
        server.kill()
        server.wait()
