"""The compose keys Live accepts are the keys its parser reads (app/compose/parse.py), and no others.

Every service key of the parser's table is accepted in a product; every other service key of the
Compose specification schema is refused, with the policy's reason when it is forbidden and with
"not supported by Live" otherwise. The same for top-level keys.
"""
from __future__ import annotations

import json

import pytest
import yaml

from app.catalog.product import load_product
from app.compose.parse import SERVICE_KEYS, TOP_LEVEL_KEYS
from app.compose.policy import FORBIDDEN_SERVICE_KEYS
from app.config import PROJECT_ROOT

MANIFEST = "name: Demo\nplans:\n  basic: {}\n"
SCHEMA = json.loads((PROJECT_ROOT / "app" / "compose" / "compose-spec.json").read_text())
SPEC_SERVICE_KEYS = set(SCHEMA["definitions"]["service"]["properties"])
SPEC_TOP_LEVEL_KEYS = set(SCHEMA["properties"])

# A valid use of each key the parser reads (with what it needs next to it).
VALID = {
    "image": {"image": "nginx:1.25"},
    "command": {"command": ["sleep", "1"]},
    "entrypoint": {"entrypoint": ["/bin/sh", "-c"]},
    "environment": {"environment": {"A": "1"}},
    "labels": {"labels": {"org.example.team": "maps"}},
    "volumes": {"volumes": ["data:/data"]},
    "tmpfs": {"tmpfs": ["/tmp"]},
    "depends_on": {"depends_on": ["db"]},
    "healthcheck": {"healthcheck": {"test": ["CMD", "true"], "interval": "10s"}},
    "deploy": {"deploy": {"resources": {"limits": {"memory": "64m"}}, "restart_policy": {"condition": "any"}}},
    "restart": {"restart": "unless-stopped"},
    "init": {"init": True},
    "stop_grace_period": {"stop_grace_period": "30s"},
    "stop_signal": {"stop_signal": "SIGINT"},
    "user": {"user": "1000:1000"},
    "working_dir": {"working_dir": "/srv"},
    "hostname": {"hostname": "web"},
    "domainname": {"domainname": "example.org"},
    "mem_limit": {"mem_limit": "64m"},
    "mem_reservation": {"mem_reservation": "32m"},
    "memswap_limit": {"mem_limit": "64m", "memswap_limit": "128m"},
    "cpus": {"cpus": 0.5},
    "networks": {"networks": ["back"]},
    "expose": {"expose": ["9090"]},
    "ulimits": {"ulimits": {"nofile": 1024}},
    "shm_size": {"shm_size": "64m"},
    "read_only": {"read_only": True},
    "cap_add": {"cap_add": ["NET_BIND_SERVICE"]},
    "cap_drop": {"cap_drop": ["NET_RAW"]},
    "sysctls": {"sysctls": {"net.core.somaxconn": "1024"}},
    "extra_hosts": {"extra_hosts": ["db.local:10.0.0.1"]},
    "logging": {"logging": {"driver": "json-file", "options": {"max-size": "10m"}}},
    "tty": {"tty": True},
    "stdin_open": {"stdin_open": True},
}


def compose_with(web: dict, **top) -> str:
    document = {"services": {"web": {"image": "nginx:1.25", **web}, "db": {"image": "nginx:1.25"}},
                "volumes": {"data": None}, "networks": {"back": None}, **top}
    return yaml.safe_dump(document, sort_keys=False)


def test_the_parser_reads_only_keys_of_the_compose_specification():
    assert SERVICE_KEYS <= SPEC_SERVICE_KEYS
    assert TOP_LEVEL_KEYS <= SPEC_TOP_LEVEL_KEYS
    assert set(VALID) == SERVICE_KEYS, "every key the parser reads needs a valid example here"


@pytest.mark.parametrize("key", sorted(SERVICE_KEYS))
def test_every_key_the_parser_reads_is_accepted(key):
    assert load_product("demo", MANIFEST, compose_with(VALID[key])).errors == []


@pytest.mark.parametrize("key", sorted(SPEC_SERVICE_KEYS - SERVICE_KEYS))
def test_every_other_service_key_is_refused_with_its_message(key):
    errors = load_product("demo", MANIFEST, compose_with({key: "x"})).errors
    if key in FORBIDDEN_SERVICE_KEYS:
        assert f"product demo: service web: {key}: {FORBIDDEN_SERVICE_KEYS[key]}" in errors
        assert f"product demo: service web: {key}: not supported by Live" not in errors
    else:
        assert f"product demo: service web: {key}: not supported by Live" in errors


def test_extension_keys_are_accepted():
    assert load_product("demo", MANIFEST, compose_with({"x-note": "anything"}, **{"x-top": 1})).errors == []


@pytest.mark.parametrize("key", sorted(SPEC_TOP_LEVEL_KEYS - TOP_LEVEL_KEYS))
def test_every_other_top_level_key_is_refused_with_its_message(key):
    errors = load_product("demo", MANIFEST, compose_with({}, **{key: {}})).errors
    assert f"product demo: docker-compose.yml: top-level key {key!r} is not supported" in errors


def test_the_top_level_keys_the_parser_reads_are_accepted():
    assert load_product("demo", MANIFEST, compose_with({}, version="3.8")).errors == []


def test_the_products_guide_lists_every_key_the_parser_reads():
    guide = (PROJECT_ROOT / "docs" / "PRODUCTS.md").read_text()
    section = guide.split("### Supported service keys", 1)[1].split("\n#", 1)[0]
    assert [key for key in sorted(SERVICE_KEYS) if f"`{key}`" not in section] == []
    assert [key for key in sorted(TOP_LEVEL_KEYS) if f"`{key}`" not in section] == []
