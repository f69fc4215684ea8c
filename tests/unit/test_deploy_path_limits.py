"""Values the engine refuses at create or start, refused at validation instead (issue 9, item 3; QA findings)."""
from __future__ import annotations

import pytest

from app.catalog.product import load_product

MANIFEST = "name: Limits\nplans: {basic: {}}\n"


def errors(service: str, top: str = "") -> list[str]:
    return load_product("limits", MANIFEST, "services:\n  s:\n    image: busybox\n" + service + top).errors


@pytest.mark.parametrize("user", ["'4294967296:1'", "'99999999999999999999'", "'1000:2147483648'"])
def test_uids_and_gids_beyond_the_engines_range_are_refused(user):
    assert errors(f"    user: {user}\n") == [
        f"product limits: service s: user: {user}: uids and gids are at most 2147483647"]


@pytest.mark.parametrize("user", ["'2147483647:0'", "postgres", "'999:999'", "nobody:nogroup"])
def test_users_in_range_are_accepted(user):
    assert errors(f"    user: {user}\n") == []


@pytest.mark.parametrize("size", ["99999999999999g", "9300000p", "9223372036854775808"])
def test_log_sizes_the_engine_cannot_count_are_refused(size):
    assert errors(f"    logging: {{driver: json-file, options: {{max-size: '{size}'}}}}\n") == [
        f"product limits: service s: logging.options.max-size: '{size}' is more bytes than the engine can count"]


@pytest.mark.parametrize("size", ["10m", "1.5g", "100kb", "9223372036854775807"])
def test_log_sizes_the_engine_counts_are_accepted(size):
    assert errors(f"    logging: {{driver: json-file, options: {{max-size: '{size}'}}}}\n") == []


@pytest.mark.parametrize("port", ["0755", "'0755'", "'080/udp'", "'80-0090'"])
def test_ports_with_leading_zeros_are_refused_not_guessed(port):
    [error] = errors(f"    expose: [{port}]\n")
    assert "a port is written without leading zeros" in error and error.startswith("product limits: service s:")


@pytest.mark.parametrize("section", ["volumes", "networks"])
def test_volume_and_network_names_longer_than_a_dns_label_are_refused(section):
    name = "v" * 64
    mount = f"    volumes: ['{name}:/d']\n" if section == "volumes" else f"    networks: [{name}]\n"
    [error] = errors(mount, f"{section}:\n  {name}:\n")
    assert error.startswith(f"product limits: {section}: 'vvvvvvvvvvvvvvvvvvvv'... is 64 characters long")


def test_a_service_name_longer_than_a_dns_label_is_refused_and_63_is_fine():
    long = load_product("limits", MANIFEST, "services:\n  " + "s" * 64 + ":\n    image: busybox\n").errors
    assert any("is 64 characters long; names are at most 63" in error for error in long)
    assert load_product("limits", MANIFEST, "services:\n  " + "s" * 63 + ":\n    image: busybox\n").errors == []
