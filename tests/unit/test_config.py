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


# -- ingress (docs/OPERATIONS.md, "Ingress") ---------------------------------------------------------------
def test_without_caddy_there_is_no_ingress_and_urls_are_https():
    settings = load_settings({})
    assert settings.caddy_admin_url is None and settings.tls == "acme"
    assert settings.public_address.url("acme.geocat.live", "/geoserver/") == "https://acme.geocat.live/geoserver"


@pytest.mark.parametrize("env, url", [
    ({"LIVE_TLS": "off"}, "http://a.localhost/maps"),
    ({"LIVE_TLS": "off", "LIVE_INGRESS_HTTP_PORT": "8080"}, "http://a.localhost:8080/maps"),
    ({"LIVE_TLS": "internal", "LIVE_INGRESS_HTTPS_PORT": "8443"}, "https://a.localhost:8443/maps"),
    ({"LIVE_TLS": "acme", "LIVE_INGRESS_HTTP_PORT": "8080"}, "https://a.localhost/maps"),  # the port of http only
    ({"LIVE_PUBLIC_SCHEME": "http"}, "http://a.localhost/maps"),  # the older setting still means what it meant
    ({"LIVE_PUBLIC_SCHEME": "https", "LIVE_TLS": "internal"}, "https://a.localhost/maps"),
])
def test_every_url_follows_the_tls_mode_and_a_port_that_is_not_the_default(env, url):
    assert load_settings(env).public_address.url("a.localhost", "/maps") == url


def test_the_ingress_settings_are_read():
    settings = load_settings({"LIVE_CADDY_ADMIN_URL": "http://127.0.0.1:2019/", "LIVE_INGRESS_BIND": "127.0.0.1",
                              "LIVE_ACME_EMAIL": "ops@example.org", "LIVE_BILLING_URL": "https://billing.example.org/c",
                              "LIVE_INGRESS_RESYNC_SECONDS": "5",
                              "LIVE_INGRESS_ASK_URL": "http://10.0.0.2:8000/ingress/v1/ask"})
    assert settings.caddy_admin_url == "http://127.0.0.1:2019"
    assert (settings.ingress_bind, settings.acme_email, settings.billing_url) == (
        "127.0.0.1", "ops@example.org", "https://billing.example.org/c")
    assert settings.ingress_resync_seconds == 5.0 and settings.ingress_ask_url == "http://10.0.0.2:8000/ingress/v1/ask"


@pytest.mark.parametrize("env, message", [
    ({"LIVE_TLS": "letsencrypt"}, "LIVE_TLS must be acme, internal or off, got 'letsencrypt'"),
    ({"LIVE_TLS": "off", "LIVE_PUBLIC_SCHEME": "https"}, "LIVE_PUBLIC_SCHEME=https contradicts LIVE_TLS=off"),
    ({"LIVE_CADDY_ADMIN_URL": "127.0.0.1:2019"}, "LIVE_CADDY_ADMIN_URL must be an http(s) URL"),
    ({"LIVE_BILLING_URL": "https://x.example/{http.request.host}"}, "LIVE_BILLING_URL must be an http(s) URL"),
    ({"LIVE_INGRESS_HTTPS_PORT": "70000"}, "LIVE_INGRESS_HTTPS_PORT must be a TCP port (1-65535), got 70000"),
    ({"LIVE_INGRESS_HTTP_PORT": "0"}, "LIVE_INGRESS_HTTP_PORT must be at least 1"),
    ({"LIVE_INGRESS_HTTP_PORT": "8443", "LIVE_INGRESS_HTTPS_PORT": "8443"}, "must differ (both are 8443)"),
    ({"LIVE_ACME_EMAIL": "ops"}, "LIVE_ACME_EMAIL must be an email address"),
    ({"LIVE_INGRESS_BIND": "0.0.0.0 ; rm"}, "LIVE_INGRESS_BIND must be an IP address of this host"),
    ({"LIVE_INGRESS_BIND": "notanip"}, "LIVE_INGRESS_BIND must be an IP address of this host"),
    ({"LIVE_CADDY_ADMIN_URL": "http://127.0.0.1:99999"}, "LIVE_CADDY_ADMIN_URL must be http(s)://<host>:<port>"),
    ({"LIVE_CADDY_ADMIN_URL": "http://127.0.0.1:2019/config/"}, "without a path"),
    ({"LIVE_CADDY_ADMIN_URL": "http://admin:pw@127.0.0.1:2019"}, "LIVE_CADDY_ADMIN_URL must be http(s)://"),
    ({"LIVE_INGRESS_RESYNC_SECONDS": "0.1"}, "LIVE_INGRESS_RESYNC_SECONDS must be at least 1.0"),
])
def test_bad_ingress_values_are_named(env, message):
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert message in str(error.value)


def test_an_ipv6_bind_address_is_read_with_or_without_brackets():
    assert load_settings({"LIVE_INGRESS_BIND": "[::1]"}).ingress_bind == "::1"
    assert load_settings({"LIVE_INGRESS_BIND": "0:0::1"}).ingress_bind == "::1"


def test_the_orchestrator_is_one_engine_by_default_and_swarm_when_asked():
    default = load_settings({})
    assert (default.orchestrator, default.swarm_encrypt_networks, default.swarm_pool) == ("docker", False, "")
    swarm = load_settings({"LIVE_ORCHESTRATOR": "Swarm", "LIVE_SWARM_ENCRYPT_NETWORKS": "true",
                           "LIVE_SWARM_POOL": "sdi-large"})
    assert (swarm.orchestrator, swarm.swarm_encrypt_networks, swarm.swarm_pool) == ("swarm", True, "sdi-large")


@pytest.mark.parametrize("env, message", [
    ({"LIVE_ORCHESTRATOR": "kubernetes"}, "LIVE_ORCHESTRATOR must be docker .* or swarm"),
    ({"LIVE_ORCHESTRATOR": "swarm", "LIVE_SWARM_ENCRYPT_NETWORKS": "maybe"}, "LIVE_SWARM_ENCRYPT_NETWORKS must be"),
    ({"LIVE_ORCHESTRATOR": "swarm", "LIVE_SWARM_POOL": "a b"}, "LIVE_SWARM_POOL must be a node label value"),
    ({"LIVE_SWARM_POOL": "large"}, "apply to LIVE_ORCHESTRATOR=swarm only"),
    ({"LIVE_SWARM_ENCRYPT_NETWORKS": "true"}, "apply to LIVE_ORCHESTRATOR=swarm only"),
])
def test_bad_orchestrator_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


@pytest.mark.parametrize("name", ["LIVE_DRIFT_SECONDS", "LIVE_DRIFT_WINDOW_SECONDS", "LIVE_DRIFT_UNHEALTHY_SECONDS",
                                  "LIVE_USAGE_SAMPLE_SECONDS", "LIVE_USAGE_DISK_SECONDS", "LIVE_MIRROR_POLL_SECONDS",
                                  "LIVE_MIRROR_STALE_SECONDS"])
def test_a_worker_interval_beyond_7_days_is_refused_by_name_and_7_days_is_read(name):
    """1e15 seconds would overflow time.sleep or timedelta in the worker (OverflowError): a config error instead."""
    with pytest.raises(ConfigError, match=f"^{name} must be at most 604800, got 1e\\+15$"):
        load_settings({name: "1e15"})
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "604800.5"})
    field = name.removeprefix("LIVE_").lower()
    assert getattr(load_settings({name: "604800"}), field) == 604800.0
