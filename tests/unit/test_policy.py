"""Host-access policy for customer stacks (app/compose/policy.py)."""
from __future__ import annotations

import pytest

from app.compose.policy import DANGEROUS_CAPABILITIES, FORBIDDEN_SERVICE_KEYS, check_policy

SLUG = "acme-maps"
SERVICE = "web"


def compose_with(service_extra: dict | None = None, **top_level) -> dict:
    service = {"image": "nginx:1.25"}
    service.update(service_extra or {})
    document = {"services": {SERVICE: service}}
    document.update(top_level)
    return document


def only_error(errors: list[str]) -> str:
    assert len(errors) == 1, errors
    return errors[0]


def assert_names_product_service_key(message: str, key: str, service: str = SERVICE) -> None:
    assert f"product {SLUG}" in message
    assert f"service {service}" in message
    assert f": {key}:" in message


# -- a clean stack ---------------------------------------------------------

def test_plain_service_passes():
    compose = {
        "services": {
            "web": {
                "image": "nginx",
                "volumes": ["data:/data", {"type": "volume", "source": "data", "target": "/more"}],
                "cap_add": ["CHOWN", "NET_BIND_SERVICE"],
                "cap_drop": ["ALL"],
                "sysctls": {"net.core.somaxconn": "1024"},
                "tmpfs": ["/run"],
                "environment": {"privileged": "true"},  # a variable called privileged is fine
            },
            "db": {"image": "postgres"},
        },
        "volumes": {"data": None},
        "networks": {"backend": {"internal": True}, "front": {"driver": "bridge"}, "plain": None},
    }
    assert check_policy(SLUG, compose) == []


def test_empty_document_passes():
    assert check_policy(SLUG, {}) == []
    assert check_policy(SLUG, {"services": None, "volumes": None, "networks": None}) == []


def test_non_mapping_service_is_skipped():
    # Structure errors are the schema's job, the policy must not crash on them.
    assert check_policy(SLUG, {"services": {"web": None, "other": "text"}}) == []


# -- forbidden keys ----------------------------------------------------------

@pytest.mark.parametrize(
    "key, value",
    [
        ("privileged", True),
        ("devices", ["/dev/sda:/dev/sda"]),
        ("device_cgroup_rules", ["c 1:3 mr"]),
        ("volumes_from", ["other"]),
        ("cgroup_parent", "/host"),
        ("userns_mode", "host"),
        ("uts", "host"),
        ("container_name", "my-web"),
        ("ports", ["80:80"]),
        ("env_file", [".env"]),
        ("build", "."),
        ("extends", {"service": "base"}),
        ("external_links", ["redis"]),
        ("links", ["db"]),
        ("isolation", "process"),
        ("runtime", "runc"),
        ("group_add", ["docker"]),
        ("oom_kill_disable", True),
        ("oom_score_adj", -1000),
        ("pid", "host"),
        ("ipc", "host"),
        ("network_mode", "host"),
        ("network_mode", "service:other"),
        ("secrets", ["db_password"]),
        ("configs", ["app_config"]),
        ("security_opt", ["seccomp:unconfined"]),
        ("pids_limit", -1),
        ("credential_spec", {"file": "spec.json"}),
    ],
)
def test_forbidden_service_key(key, value):
    message = only_error(check_policy(SLUG, compose_with({key: value})))
    assert_names_product_service_key(message, key)
    # The message carries the reason, not just the key.
    assert FORBIDDEN_SERVICE_KEYS[key] in message


def test_forbidden_key_is_denied_even_with_a_harmless_value():
    # privileged: false is pointless, and denying the key outright keeps the rule simple.
    message = only_error(check_policy(SLUG, compose_with({"privileged": False})))
    assert_names_product_service_key(message, "privileged")


def test_every_forbidden_key_is_reported_separately():
    service = {key: "x" for key in FORBIDDEN_SERVICE_KEYS}
    errors = check_policy(SLUG, compose_with(service))
    assert len(errors) == len(FORBIDDEN_SERVICE_KEYS)
    for key in FORBIDDEN_SERVICE_KEYS:
        assert any(f"service {SERVICE}: {key}:" in e for e in errors), key


def test_errors_name_the_offending_service_among_several():
    compose = {"services": {"good": {"image": "a"}, "bad": {"image": "b", "privileged": True}}}
    message = only_error(check_policy(SLUG, compose))
    assert_names_product_service_key(message, "privileged", service="bad")
    assert "service good" not in message


# -- capabilities ------------------------------------------------------------

@pytest.mark.parametrize(
    "cap",
    ["SYS_ADMIN", "CAP_SYS_ADMIN", "sys_admin", "cap_sys_admin", "Cap_Sys_Admin",
     "ALL", "all", "NET_ADMIN", "CAP_NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "BPF"],
)
def test_dangerous_capability_is_denied_with_and_without_prefix_in_any_case(cap):
    message = only_error(check_policy(SLUG, compose_with({"cap_add": [cap]})))
    assert_names_product_service_key(message, "cap_add")
    assert cap in message  # names the capability as written


@pytest.mark.parametrize("cap", sorted(DANGEROUS_CAPABILITIES))
def test_every_listed_dangerous_capability_is_denied(cap):
    assert len(check_policy(SLUG, compose_with({"cap_add": [f"CAP_{cap}"]}))) == 1


@pytest.mark.parametrize("cap", ["CHOWN", "CAP_CHOWN", "chown", "NET_BIND_SERVICE", "SETUID", "SETGID", "KILL", "FOWNER"])
def test_safe_capability_is_allowed(cap):
    assert check_policy(SLUG, compose_with({"cap_add": [cap]})) == []


def test_one_error_per_dangerous_capability_and_safe_ones_ignored():
    errors = check_policy(SLUG, compose_with({"cap_add": ["CHOWN", "SYS_ADMIN", "NET_ADMIN"]}))
    assert len(errors) == 2
    assert any("SYS_ADMIN" in e for e in errors)
    assert any("NET_ADMIN" in e for e in errors)
    assert not any("CHOWN" in e for e in errors)


def test_cap_drop_of_anything_is_allowed():
    assert check_policy(SLUG, compose_with({"cap_drop": ["ALL", "SYS_ADMIN"]})) == []


# -- sysctls -------------------------------------------------------------------

@pytest.mark.parametrize(
    "sysctls",
    [{"net.core.somaxconn": "1024", "net.ipv4.tcp_syncookies": "0"}, ["net.core.somaxconn=1024", "net.ipv4.ip_forward=1"]],
    ids=["mapping", "list"],
)
def test_net_sysctls_are_allowed(sysctls):
    assert check_policy(SLUG, compose_with({"sysctls": sysctls})) == []


@pytest.mark.parametrize(
    "sysctls, name",
    [
        ({"kernel.shmmax": "1"}, "kernel.shmmax"),
        (["kernel.core_pattern=|/bin/sh"], "kernel.core_pattern"),
        (["vm.overcommit_memory=1"], "vm.overcommit_memory"),
        ({"fs.file-max": "1"}, "fs.file-max"),
        ({"network.x": "1"}, "network.x"),  # 'net' must be the whole first component
    ],
)
def test_non_net_sysctls_are_denied(sysctls, name):
    message = only_error(check_policy(SLUG, compose_with({"sysctls": sysctls})))
    assert_names_product_service_key(message, "sysctls")
    assert name in message


# -- volumes: host binds and the Docker socket ----------------------------------

@pytest.mark.parametrize(
    "volume",
    [
        "/:/host",
        "/etc:/etc:ro",
        "./data:/data",
        "../up:/up",
        ".:/src",
        "~/x:/x",
        "~:/home",
        "data/sub:/x",  # a relative path (contains '/') is a bind mount
        {"type": "bind", "source": "/", "target": "/host"},
        {"type": "bind", "source": "./data", "target": "/data"},
        {"type": "bind", "source": "~/data", "target": "/data"},
        {"type": "bind", "source": "data", "target": "/data"},  # bind to a relative path named like a volume
    ],
)
def test_host_bind_mounts_are_denied(volume):
    message = only_error(check_policy(SLUG, compose_with({"volumes": [volume]}, volumes={"data": None})))
    assert_names_product_service_key(message, "volumes[0]")
    assert "host path" in message


@pytest.mark.parametrize(
    "volume",
    [
        "/var/run/docker.sock:/var/run/docker.sock",
        "/run/docker.sock:/var/run/docker.sock:ro",
        "/var/run/docker.sock:/tmp/d.sock",
        "./docker.sock:/var/run/docker.sock",
        {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"},
        {"type": "bind", "source": "/run/docker.sock", "target": "/docker.sock", "read_only": True},
    ],
)
def test_docker_socket_is_denied(volume):
    message = only_error(check_policy(SLUG, compose_with({"volumes": [volume]})))
    assert_names_product_service_key(message, "volumes[0]")
    assert "Docker socket" in message


def test_volume_index_is_reported():
    volumes = ["data:/data", "/etc:/etc"]
    message = only_error(check_policy(SLUG, compose_with({"volumes": volumes}, volumes={"data": {}})))
    assert_names_product_service_key(message, "volumes[1]")
    assert "'/etc'" in message


@pytest.mark.parametrize(
    "volume",
    ["undeclared:/data", {"type": "volume", "source": "undeclared", "target": "/data"},
     {"source": "undeclared", "target": "/data"}],  # type defaults to volume in long syntax
)
def test_undeclared_named_volume_is_denied(volume):
    message = only_error(check_policy(SLUG, compose_with({"volumes": [volume]}, volumes={"data": None})))
    assert_names_product_service_key(message, "volumes[0]")
    assert "'undeclared'" in message
    assert "not declared" in message


def test_named_volume_without_top_level_volumes_is_undeclared():
    message = only_error(check_policy(SLUG, compose_with({"volumes": ["data:/data"]})))
    assert "not declared" in message


@pytest.mark.parametrize(
    "volume",
    [
        "data:/data",
        "data:/data:ro",
        "data:/data:rw,nocopy",
        "/anonymous/path",  # anonymous volume: not a host path (the spec parser rejects it separately)
        {"type": "volume", "source": "data", "target": "/data"},
        {"type": "volume", "target": "/anon"},
        {"type": "tmpfs", "target": "/tmp"},
    ],
)
def test_allowed_volume_forms(volume):
    assert check_policy(SLUG, compose_with({"volumes": [volume]}, volumes={"data": None})) == []


def test_unreadable_volume_entry_is_denied():
    message = only_error(check_policy(SLUG, compose_with({"volumes": [42]})))
    assert_names_product_service_key(message, "volumes[0]")


def test_docker_socket_in_tmpfs_is_denied():
    message = only_error(check_policy(SLUG, compose_with({"tmpfs": "/var/run/docker.sock"})))
    assert_names_product_service_key(message, "tmpfs")


# -- top-level volumes and networks ---------------------------------------------

def test_external_volume_is_denied():
    message = only_error(check_policy(SLUG, {"services": {}, "volumes": {"shared": {"external": True}}}))
    assert f"product {SLUG}" in message
    assert "volumes.shared" in message
    assert "external" in message


def test_volume_driver_opts_are_denied():
    volumes = {"data": {"driver": "local", "driver_opts": {"type": "none", "o": "bind", "device": "/"}}}
    message = only_error(check_policy(SLUG, {"services": {}, "volumes": volumes}))
    assert f"product {SLUG}: volumes.data: driver_opts:" in message


def test_non_local_volume_driver_is_denied():
    message = only_error(check_policy(SLUG, {"volumes": {"data": {"driver": "nfs"}}}))
    assert f"product {SLUG}: volumes.data: driver:" in message


def test_local_volume_driver_is_allowed():
    assert check_policy(SLUG, {"volumes": {"data": {"driver": "local"}, "other": {}, "plain": None}}) == []


def test_fixed_volume_name_is_denied():
    message = only_error(check_policy(SLUG, {"volumes": {"data": {"name": "global-data"}}}))
    assert f"product {SLUG}: volumes.data: name:" in message


def test_external_network_is_denied():
    message = only_error(check_policy(SLUG, {"networks": {"proxy": {"external": True}}}))
    assert f"product {SLUG}: networks.proxy: external:" in message


@pytest.mark.parametrize("driver", ["host", "macvlan", "ipvlan", "none"])
def test_host_level_network_drivers_are_denied(driver):
    message = only_error(check_policy(SLUG, {"networks": {"n": {"driver": driver}}}))
    assert f"product {SLUG}: networks.n: driver:" in message
    assert driver in message


@pytest.mark.parametrize("driver", ["bridge", "overlay", None])
def test_bridge_and_overlay_networks_are_allowed(driver):
    assert check_policy(SLUG, {"networks": {"n": {"driver": driver}}}) == []


def test_network_driver_opts_and_fixed_name_are_denied():
    errors = check_policy(SLUG, {"networks": {"n": {"driver_opts": {"com.docker.network.bridge.name": "br0"}, "name": "shared"}}})
    assert len(errors) == 2
    assert any(e.startswith(f"product {SLUG}: networks.n: driver_opts:") for e in errors)
    assert any(e.startswith(f"product {SLUG}: networks.n: name:") for e in errors)


def test_all_violations_are_collected_not_just_the_first():
    compose = {
        "services": {
            "a": {"image": "x", "privileged": True, "cap_add": ["SYS_ADMIN"], "volumes": ["/:/host"]},
            "b": {"image": "x", "network_mode": "host", "sysctls": ["kernel.x=1"]},
        },
        "volumes": {"v": {"external": True}},
        "networks": {"n": {"external": True}},
    }
    errors = check_policy(SLUG, compose)
    assert len(errors) == 7
    assert all(e.startswith(f"product {SLUG}: ") for e in errors)


@pytest.mark.parametrize("compose", [
    {"services": ["a"]},
    {"services": {"a": {"image": "x"}}, "volumes": ["a"], "networks": ["n"]},
    {"services": {"a": {"image": "x", "tmpfs": 5, "sysctls": None, "volumes": None, "cap_add": None}}},
    {"services": {"a": None}, "volumes": None, "networks": None},
])
def test_policy_never_raises_on_a_document_of_the_wrong_shape(compose):
    assert check_policy("p", compose) == []


def test_scalars_of_the_wrong_type_are_named_not_a_crash():
    assert check_policy("p", {"services": {"a": {"image": "x", "sysctls": 7, "volumes": 3}}}) == [
        "product p: service a: sysctls: 7 is not namespaced to the container (only net.* is allowed)",
        "product p: service a: volumes[0]: unreadable volume entry",
    ]


def test_a_single_value_where_a_list_belongs_is_still_checked():
    errors = check_policy("p", {"services": {"a": {"image": "x", "cap_add": "SYS_ADMIN", "sysctls": "kernel.x=1",
                                                   "volumes": "/etc:/host"}}})
    assert errors == [
        "product p: service a: cap_add: capability SYS_ADMIN is not allowed",
        "product p: service a: sysctls: kernel.x is not namespaced to the container (only net.* is allowed)",
        "product p: service a: volumes[0]: host path '/etc' cannot be mounted: only named volumes are allowed",
    ]
