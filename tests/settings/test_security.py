import logging
import os

import pytest

import rollout
from rollout.routing.actors import Actor
from tests.rollout_helpers import manage


@pytest.mark.smoke
def test_check_deploy_is_clean_with_production_settings():
    environ = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": "p" * 30 + "Q9#xL2!vR7&mZ4@kT1^wN8*bF5" * 2,
        "ALLOWED_HOSTS": "rollout.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", environ=environ)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.smoke
@pytest.mark.parametrize("weak", ["s3cret", "ab" * 40, "django-insecure-" + "Q9#xL2!vR7&mZ4@kT1^wN8*bF5" * 2])
def test_production_refuses_a_weak_secret_key_in_one_line(weak):
    environ = {**os.environ, "DJANGO_ENV": "production", "SECRET_KEY": weak, "ALLOWED_HOSTS": "rollout.example.com"}
    result = manage("check", environ=environ)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "SECRET_KEY is weak" in lines[0], result.stderr


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
    environ = {**os.environ, "DJANGO_ENV": "production", "SECRET_KEY": "p" * 30 + "Q9#xL2!vR7&mZ4@kT1^wN8*bF5" * 2}
    environ.pop("ALLOWED_HOSTS", None)
    result = manage("check", "--deploy", environ=environ)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "ALLOWED_HOSTS must name" in lines[0], result.stderr
