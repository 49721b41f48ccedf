import logging
import os

import pytest

import rollout
from rollout.routing.actors import Actor
from tests.rollout_helpers import manage

STRONG_KEY = "p" * 30 + "Q9#xL2!vR7&mZ4@kT1^wN8*bF5" * 2


def production(**variables):
    """This environment in production with what production needs; a variable given None is unset."""
    environ = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "rollout.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        **variables,
    }
    return {name: value for name, value in environ.items() if value is not None}


@pytest.mark.smoke
def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", environ=production())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.smoke
@pytest.mark.parametrize("weak", ["s3cret", "ab" * 40, "django-insecure-" + STRONG_KEY])
def test_production_refuses_a_weak_secret_key_in_one_line(weak):
    result = manage("check", environ=production(SECRET_KEY=weak))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "SECRET_KEY is weak" in lines[0], result.stderr


@pytest.mark.smoke
def test_production_without_database_url_stops_in_one_line_naming_it():
    result = manage("check", "--deploy", environ=production(DATABASE_URL=None))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "DATABASE_URL must name" in lines[0], result.stderr


@pytest.mark.django_db
def test_slow_call_logs_hold_ids_not_secrets(settings, caplog):
    settings.ROLLOUT_SLOW_CALL_SECONDS = 0
    settings.DATABASES["default"]["PASSWORD"] = "db-password-should-never-be-logged"
    with caplog.at_level(logging.DEBUG):
        rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1)
    text = caplog.text
    assert "slow call: bu_list" in text and "'bu_id': 1" in text
    assert settings.SECRET_KEY not in text and "db-password" not in text


@pytest.mark.smoke
def test_production_without_allowed_hosts_stops_in_one_line_naming_it():
    result = manage("check", "--deploy", environ=production(ALLOWED_HOSTS=None))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "ALLOWED_HOSTS must name" in lines[0], result.stderr
