"""Settings: embedded defaults and one clear message per bad value."""
from __future__ import annotations

import pytest

from app.config import PROJECT_ROOT, load_settings
from app.errors import ConfigError


def test_defaults_run_on_a_fresh_machine():
    settings = load_settings({})
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'live.db'}"
    assert settings.config_repo == PROJECT_ROOT / "examples" / "config-repo"
    assert settings.backup_dir == PROJECT_ROOT / "var" / "backups"
    assert settings.public_scheme == "https" and settings.deployment == "live"


@pytest.mark.parametrize("env, message", [
    ({"LIVE_DATABASE_URL": "mysql://x"}, "LIVE_DATABASE_URL must start with sqlite:/// or postgresql://"),
    ({"LIVE_CONFIG_REPO": "/nonexistent"}, "LIVE_CONFIG_REPO=/nonexistent has no products/ folder"),
    ({"LIVE_BASE_DOMAIN": "not a domain"}, "LIVE_BASE_DOMAIN must be a DNS name"),
    ({"LIVE_PUBLIC_SCHEME": "ftp"}, "LIVE_PUBLIC_SCHEME must be http or https"),
    ({"LIVE_WORKER_CONCURRENCY": "many"}, "LIVE_WORKER_CONCURRENCY must be an integer, got 'many'"),
    ({"LIVE_WORKER_CONCURRENCY": "0"}, "LIVE_WORKER_CONCURRENCY must be at least 1"),
    ({"LIVE_HEALTH_TIMEOUT_SECONDS": "soon"}, "LIVE_HEALTH_TIMEOUT_SECONDS must be a number"),
    ({"LIVE_DEPLOYMENT": "Prod_1"}, "LIVE_DEPLOYMENT must be 1-16 lowercase letters or digits"),
    ({"LIVE_LOG_LEVEL": "chatty"}, "LIVE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR"),
])
def test_bad_values_are_named(env, message):
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert message in str(error.value)


def test_relative_paths_are_resolved_against_the_project():
    settings = load_settings({"LIVE_BACKUP_DIR": "var/elsewhere", "LIVE_BASE_DOMAIN": "GeoCat.Live."})
    assert settings.backup_dir == PROJECT_ROOT / "var" / "elsewhere"
    assert settings.base_domain == "geocat.live"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_numbers_that_are_not_finite_stop_start_up(value):
    with pytest.raises(ConfigError, match="LIVE_RETRY_BASE_SECONDS must be a number"):
        load_settings({"LIVE_RETRY_BASE_SECONDS": value})


@pytest.mark.parametrize("domain", ["192.0.2.1", "10.0.0.1.", "example.123"])
def test_an_ip_address_is_not_a_base_domain(domain):
    with pytest.raises(ConfigError, match="LIVE_BASE_DOMAIN must be a DNS name"):
        load_settings({"LIVE_BASE_DOMAIN": domain})
