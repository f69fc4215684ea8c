"""Rendered compose -> engine-ready service specs (app/compose/parse.py)."""
from __future__ import annotations

import pytest

from app.errors import LiveError
from app.compose.model import VolumeMount, dependency_cycle, topological_order
from app.compose.parse import (
    StackSpecError,
    depends_on_names,
    parse_duration_ns,
    parse_service,
    parse_size,
    parse_stack,
)

S = 1_000_000_000  # nanoseconds per second
KiB, MiB, GiB = 1024, 1024**2, 1024**3


def service(raw_extra: dict | None = None, compose: dict | None = None, name: str = "web"):
    raw = {"image": "nginx:1.25"}
    raw.update(raw_extra or {})
    return parse_service(name, raw, compose if compose is not None else {})


# -- durations ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        ("10s", 10 * S),
        ("1m30s", 90 * S),
        ("500ms", S // 2),
        ("1h", 3600 * S),
        ("1h2m3s", 3723 * S),
        ("1.5s", 3 * S // 2),
        ("250us", 250_000),
        ("100ns", 100),
        ("0s", 0),
        ("2m500ms", 120 * S + S // 2),
        (" 10s ", 10 * S),  # surrounding spaces are tolerated
        (5, 5 * S),          # a bare number is seconds
        (0, 0),
        (0.5, S // 2),
    ],
)
def test_parse_duration_ns(value, expected):
    assert parse_duration_ns(value, "interval") == expected


@pytest.mark.parametrize("value", ["", "10", "s", "10x", "ten seconds", "1m 30s", "-5s", "5s garbage", "1d", True, None])
def test_parse_duration_invalid(value):
    with pytest.raises(StackSpecError) as info:
        parse_duration_ns(value, "healthcheck.interval")
    assert "healthcheck.interval" in str(info.value)
    assert "invalid duration" in str(info.value)


def test_spec_error_is_a_live_error():
    assert issubclass(StackSpecError, LiveError)


# -- sizes -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        ("512m", 512 * MiB),
        ("1g", GiB),
        ("1G", GiB),
        ("1.5g", 3 * GiB // 2),
        ("1024k", MiB),
        ("1024K", MiB),
        ("128MB", 128 * MiB),
        ("2gb", 2 * GiB),
        ("1t", 1024 * GiB),
        ("100b", 100),
        ("100", 100),
        (" 64m ", 64 * MiB),
        ("64 m", 64 * MiB),
        (100, 100),
        (0, 0),
    ],
)
def test_parse_size(value, expected):
    assert parse_size(value, "mem_limit") == expected


@pytest.mark.parametrize("value", ["", "abc", "-1g", "1x", "g", "1.2.3m", "12 mega", True, None])
def test_parse_size_invalid(value):
    with pytest.raises(StackSpecError) as info:
        parse_size(value, "mem_limit")
    assert "mem_limit" in str(info.value)
    assert "invalid size" in str(info.value)


# -- basics ------------------------------------------------------------------------------

def test_minimal_service_defaults():
    spec = service()
    assert spec.name == "web"
    assert spec.image == "nginx:1.25"
    assert spec.command is None and spec.entrypoint is None
    assert spec.environment == {} and spec.labels == {}
    assert spec.volumes == [] and spec.tmpfs == {}
    assert spec.depends_on == {}
    assert spec.healthcheck is None and spec.restart is None
    assert spec.stop_grace_seconds == 10
    assert spec.mem_limit is None and spec.nano_cpus is None
    assert spec.networks == {"default": []}
    assert spec.read_only is False and spec.tty is False


def test_image_is_stripped():
    assert service({"image": "  nginx  "}).image == "nginx"


@pytest.mark.parametrize("image", [None, "", "   ", 5])
def test_image_is_required(image):
    with pytest.raises(StackSpecError, match="image"):
        parse_service("web", {"image": image} if image is not None else {}, {})


@pytest.mark.parametrize("name", ["web", "web_1", "web.1", "Web-2", "0db"])
def test_valid_service_names(name):
    assert service(name=name).name == name


@pytest.mark.parametrize("name", ["-web", "_web", "web server", "web/1", "wéb", ""])
def test_invalid_service_names(name):
    with pytest.raises(StackSpecError, match="service name"):
        service(name=name)


def test_as_dict_is_plain_data():
    data = service({"volumes": ["d:/d"]}, {"volumes": {"d": None}}).as_dict()
    assert data["name"] == "web"
    assert data["volumes"] == [{"volume": "d", "target": "/d", "read_only": False}]


# -- command / entrypoint ------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        ("nginx -g 'daemon off;'", ["nginx", "-g", "daemon off;"]),
        ('sh -c "echo hello world"', ["sh", "-c", "echo hello world"]),
        ("a  b\tc", ["a", "b", "c"]),
        ("", []),
        (["sh", "-c", "echo $HOME"], ["sh", "-c", "echo $HOME"]),
        (["sleep", 10], ["sleep", "10"]),  # numbers become strings
        ([], []),
    ],
)
@pytest.mark.parametrize("key", ["command", "entrypoint"])
def test_command_and_entrypoint(key, value, expected):
    assert getattr(service({key: value}), key) == expected


@pytest.mark.parametrize("key", ["command", "entrypoint"])
def test_unbalanced_quotes_are_an_error(key):
    with pytest.raises(StackSpecError) as info:
        service({key: "echo 'unterminated"})
    assert str(info.value).startswith(f"{key}: cannot split")


def test_command_of_wrong_type():
    with pytest.raises(StackSpecError, match="command: expected a string or a list"):
        service({"command": {"a": 1}})


# -- environment ------------------------------------------------------------------------------

def test_environment_list_form():
    spec = service({"environment": ["A=1", "B=", "C=x=y", "D=with spaces"]})
    assert spec.environment == {"A": "1", "B": "", "C": "x=y", "D": "with spaces"}


def test_environment_dict_form_converts_values_to_text():
    spec = service({"environment": {"A": "1", "B": 2, "C": True, "D": False, "E": "", "F": 1.5}})
    assert spec.environment == {"A": "1", "B": "2", "C": "true", "D": "false", "E": "", "F": "1.5"}


@pytest.mark.parametrize("environment", [["A=1", "HOST_VALUE"], {"A": "1", "HOST_VALUE": None}], ids=["list", "dict"])
def test_environment_entry_without_value_is_an_error(environment):
    # Compose would copy the value from the host; Live never does.
    with pytest.raises(StackSpecError) as info:
        service({"environment": environment})
    assert "environment: HOST_VALUE has no value" in str(info.value)


# -- labels -------------------------------------------------------------------------------------

def test_labels_mapping_and_list():
    assert service({"labels": {"a.b": "c", "n": 1}}).labels == {"a.b": "c", "n": "1"}
    assert service({"labels": ["a.b=c", "flag"]}).labels == {"a.b": "c", "flag": ""}


@pytest.mark.parametrize("labels", [{"live.service": "x"}, ["live.order=1"], {"live.anything": ""}])
def test_reserved_live_labels_are_rejected(labels):
    with pytest.raises(StackSpecError, match=r"live\.\* prefix is reserved"):
        service({"labels": labels})


def test_labels_merely_containing_live_are_allowed():
    assert service({"labels": {"org.live.x": "1", "lively": "1"}}).labels == {"org.live.x": "1", "lively": "1"}


def test_labels_of_wrong_type():
    with pytest.raises(StackSpecError, match="labels: expected a mapping"):
        service({"labels": "a=b"})


# -- healthcheck ------------------------------------------------------------------------------------

def test_healthcheck_string_test_runs_in_a_shell():
    spec = service({"healthcheck": {"test": "curl -f http://localhost/ || exit 1"}})
    assert spec.healthcheck == {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}


def test_healthcheck_list_and_timings():
    spec = service({"healthcheck": {
        "test": ["CMD", "test", "-f", "/ready"],
        "interval": "1m30s", "timeout": "500ms", "start_period": 60, "retries": "3",
    }})
    assert spec.healthcheck == {
        "Test": ["CMD", "test", "-f", "/ready"],
        "Interval": 90 * S,
        "Timeout": S // 2,
        "StartPeriod": 60 * S,
        "Retries": 3,
    }


@pytest.mark.parametrize("first", ["CMD", "CMD-SHELL", "NONE"])
def test_healthcheck_list_prefixes(first):
    assert service({"healthcheck": {"test": [first, "x"]}}).healthcheck["Test"][0] == first


def test_healthcheck_list_without_prefix_is_an_error():
    with pytest.raises(StackSpecError, match="CMD, CMD-SHELL or NONE"):
        service({"healthcheck": {"test": ["curl", "-f", "http://localhost/"]}})


def test_healthcheck_disable():
    assert service({"healthcheck": {"disable": True}}).healthcheck == {"Test": ["NONE"]}
    # disable wins over a test
    assert service({"healthcheck": {"disable": True, "test": "true"}}).healthcheck == {"Test": ["NONE"]}


def test_healthcheck_timings_only_keep_the_image_test():
    assert service({"healthcheck": {"interval": "5s"}}).healthcheck == {"Interval": 5 * S}


@pytest.mark.parametrize("value", [None, {}])
def test_no_healthcheck(value):
    assert service({"healthcheck": value}).healthcheck is None


def test_healthcheck_invalid_values():
    with pytest.raises(StackSpecError, match="healthcheck.interval"):
        service({"healthcheck": {"test": "true", "interval": "often"}})
    with pytest.raises(StackSpecError, match="healthcheck.retries"):
        service({"healthcheck": {"test": "true", "retries": "many"}})
    with pytest.raises(StackSpecError, match="healthcheck: test must be"):
        service({"healthcheck": {"test": 5}})


# -- restart ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        ("always", {"Name": "always"}),
        ("unless-stopped", {"Name": "unless-stopped"}),
        ("on-failure", {"Name": "on-failure"}),
        ("on-failure:5", {"Name": "on-failure", "MaximumRetryCount": 5}),
        ("no", None),
        (False, None),  # YAML 1.1 reads an unquoted `no` as false
        (None, None),
    ],
)
def test_restart_values(value, expected):
    assert service({"restart": value}).restart == expected


@pytest.mark.parametrize("value", ["sometimes", "on-failure:x", "on-failure:-1", "ALWAYS", True])
def test_restart_invalid(value):
    with pytest.raises(StackSpecError, match="restart"):
        service({"restart": value})


@pytest.mark.parametrize("value", ["always:3", "unless-stopped:3"])
def test_retry_count_only_with_on_failure(value):
    with pytest.raises(StackSpecError, match="restart"):
        service({"restart": value})


@pytest.mark.parametrize(
    "policy, expected",
    [
        ({"condition": "any"}, {"Name": "always"}),
        ({"delay": "5s"}, {"Name": "always"}),  # Compose's default condition is "any"
        ({"condition": "on-failure"}, {"Name": "on-failure"}),
        ({"condition": "none"}, None),
    ],
)
def test_restart_falls_back_to_deploy_restart_policy(policy, expected):
    assert service({"deploy": {"restart_policy": policy}}).restart == expected


def test_empty_deploy_restart_policy_uses_default_condition():
    assert service({"deploy": {"restart_policy": {}}}).restart == {"Name": "always"}


def test_restart_key_wins_over_deploy_restart_policy():
    spec = service({"restart": "unless-stopped", "deploy": {"restart_policy": {"condition": "on-failure"}}})
    assert spec.restart == {"Name": "unless-stopped"}


def test_unknown_deploy_restart_condition_is_an_error():
    with pytest.raises(StackSpecError, match="restart"):
        service({"deploy": {"restart_policy": {"condition": "whenever"}}})


# -- stop grace ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [("2s", 2), ("1m30s", 90), (45, 45), ("1500ms", 2), ("0s", 0)])
def test_stop_grace_period(value, seconds):
    assert service({"stop_grace_period": value}).stop_grace_seconds == seconds


# -- resources ------------------------------------------------------------------------------------------

def test_deploy_resource_limits():
    spec = service({"deploy": {"resources": {"limits": {"memory": "512m", "cpus": "0.5"},
                                             "reservations": {"memory": "256m"}}}})
    assert spec.mem_limit == 512 * MiB
    assert spec.nano_cpus == S // 2
    assert spec.mem_reservation == 256 * MiB


def test_service_level_limits_win_over_deploy_limits():
    spec = service({"mem_limit": "1g", "cpus": 2, "mem_reservation": "128m",
                    "deploy": {"resources": {"limits": {"memory": "512m", "cpus": "0.5"},
                                             "reservations": {"memory": "256m"}}}})
    assert spec.mem_limit == GiB
    assert spec.nano_cpus == 2 * S
    assert spec.mem_reservation == 128 * MiB


def test_other_sizes():
    spec = service({"memswap_limit": "2g", "shm_size": "256m"})
    assert spec.memswap_limit == 2 * GiB
    assert spec.shm_size == 256 * MiB


def test_empty_limits_are_no_limits():
    spec = service({"mem_limit": "", "cpus": "", "deploy": {"resources": {}}})
    assert spec.mem_limit is None and spec.nano_cpus is None


@pytest.mark.parametrize("cpus", [0, "0", -1, "-0.5"])
def test_non_positive_cpus_are_an_error(cpus):
    with pytest.raises(StackSpecError, match="cpus: must be positive"):
        service({"cpus": cpus})


def test_non_numeric_cpus_are_an_error():
    with pytest.raises(StackSpecError, match="cpus: expected a number"):
        service({"deploy": {"resources": {"limits": {"cpus": "half"}}}})


def test_invalid_memory_names_the_key():
    with pytest.raises(StackSpecError, match="mem_limit: invalid size 'lots'"):
        service({"deploy": {"resources": {"limits": {"memory": "lots"}}}})


# -- volumes ------------------------------------------------------------------------------------------------

DECLARED = {"volumes": {"data": None, "cache": {}}}


def test_short_volume_syntax():
    spec = service({"volumes": ["data:/var/lib/data", "cache:/cache:ro", "data:/other:rw"]}, DECLARED)
    assert spec.volumes == [
        VolumeMount("data", "/var/lib/data", False),
        VolumeMount("cache", "/cache", True),
        VolumeMount("data", "/other", False),
    ]


def test_short_volume_with_several_options():
    spec = service({"volumes": ["data:/d:nocopy,ro"]}, DECLARED)
    assert spec.volumes == [VolumeMount("data", "/d", True)]


def test_long_volume_syntax():
    spec = service({"volumes": [
        {"type": "volume", "source": "data", "target": "/data", "read_only": True},
        {"source": "cache", "target": "/cache"},
    ]}, DECLARED)
    assert spec.volumes == [VolumeMount("data", "/data", True), VolumeMount("cache", "/cache", False)]


@pytest.mark.parametrize("volume", ["/data", {"type": "volume", "target": "/data"}], ids=["short", "long"])
def test_anonymous_volume_is_an_error(volume):
    with pytest.raises(StackSpecError, match="anonymous volume at /data"):
        service({"volumes": [volume]}, DECLARED)


@pytest.mark.parametrize("volume", ["ghost:/data", {"type": "volume", "source": "ghost", "target": "/data"}])
def test_undeclared_volume_is_an_error(volume):
    with pytest.raises(StackSpecError, match="named volume 'ghost' is not declared"):
        service({"volumes": [volume]}, DECLARED)


@pytest.mark.parametrize("volume", ["data:relative", {"source": "data", "target": "relative"}, {"source": "data"}])
def test_volume_target_must_be_absolute(volume):
    with pytest.raises(StackSpecError, match="must be an absolute path"):
        service({"volumes": [volume]}, DECLARED)


def test_tmpfs_long_syntax_in_volumes():
    spec = service({"volumes": [
        {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": "64m"}},
        {"type": "tmpfs", "target": "/run"},
        {"type": "tmpfs", "target": "/bytes", "tmpfs": {"size": 1000}},
    ]})
    assert spec.volumes == []
    assert spec.tmpfs == {"/tmp": f"size={64 * MiB}", "/run": "", "/bytes": "size=1000"}


@pytest.mark.parametrize(
    "tmpfs, expected",
    [
        ("/run", {"/run": ""}),
        (["/run", "/tmp:size=64m,mode=1777"], {"/run": "", "/tmp": "size=64m,mode=1777"}),
        (None, {}),
    ],
)
def test_tmpfs_key(tmpfs, expected):
    assert service({"tmpfs": tmpfs}).tmpfs == expected


def test_tmpfs_key_and_tmpfs_volumes_are_merged():
    spec = service({"tmpfs": ["/run"], "volumes": [{"type": "tmpfs", "target": "/tmp"}]})
    assert spec.tmpfs == {"/tmp": "", "/run": ""}


# -- depends_on ---------------------------------------------------------------------------------------------

def test_depends_on_list_means_started():
    assert service({"depends_on": ["db", "cache"]}).depends_on == {"db": "service_started", "cache": "service_started"}


def test_depends_on_mapping_conditions():
    spec = service({"depends_on": {
        "db": {"condition": "service_healthy"},
        "init": {"condition": "service_completed_successfully"},
        "cache": None,
        "queue": {},
    }})
    assert spec.depends_on == {
        "db": "service_healthy",
        "init": "service_completed_successfully",
        "cache": "service_started",
        "queue": "service_started",
    }


def test_depends_on_unknown_condition():
    with pytest.raises(StackSpecError, match="depends_on: db: unknown condition 'service_ready'"):
        service({"depends_on": {"db": {"condition": "service_ready"}}})


@pytest.mark.parametrize("value, expected", [(None, []), (["a", "b"], ["a", "b"]), ({"a": {}, "b": None}, ["a", "b"])])
def test_depends_on_names(value, expected):
    assert depends_on_names(value) == expected


# -- networks -------------------------------------------------------------------------------------------------

def test_networks_default_when_absent():
    assert service().networks == {"default": []}
    assert service({"networks": []}).networks == {"default": []}


def test_networks_list_and_aliases():
    compose = {"networks": {"backend": {"internal": True}, "front": None}}
    assert service({"networks": ["default", "backend"]}, compose).networks == {"default": [], "backend": []}
    spec = service({"networks": {"backend": {"aliases": ["db", "postgres"]}, "front": None}}, compose)
    assert spec.networks == {"backend": ["db", "postgres"], "front": []}


def test_undeclared_network_is_an_error():
    with pytest.raises(StackSpecError, match="networks: 'ghost' is not declared"):
        service({"networks": ["ghost"]}, {"networks": {"backend": {}}})


# -- misc conversions --------------------------------------------------------------------------------------------

def test_misc_fields():
    spec = service({
        "init": True, "stop_signal": "SIGINT", "user": 1000, "working_dir": "/app",
        "hostname": "h", "domainname": "example.org", "expose": [8080, "9090/udp"],
        "ulimits": {"nofile": {"soft": 1024, "hard": 4096}, "nproc": 512},
        "read_only": True, "cap_add": ["CHOWN"], "cap_drop": ["ALL"],
        "sysctls": ["net.core.somaxconn=1024"], "extra_hosts": ["a.local=10.0.0.1", "b.local:10.0.0.2"],
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": 3}},
        "tty": True, "stdin_open": True,
    })
    assert spec.init is True
    assert spec.stop_signal == "SIGINT"
    assert spec.user == "1000"
    assert spec.working_dir == "/app"
    assert (spec.hostname, spec.domainname) == ("h", "example.org")
    assert spec.expose == ["8080", "9090/udp"]
    assert spec.ulimits == [{"Name": "nofile", "Soft": 1024, "Hard": 4096}, {"Name": "nproc", "Soft": 512, "Hard": 512}]
    assert spec.read_only is True
    assert spec.cap_add == ["CHOWN"] and spec.cap_drop == ["ALL"]
    assert spec.sysctls == {"net.core.somaxconn": "1024"}
    assert spec.extra_hosts == ["a.local:10.0.0.1", "b.local:10.0.0.2"]
    assert spec.log_config == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert spec.tty is True and spec.stdin_open is True


def test_extra_hosts_mapping_form():
    assert service({"extra_hosts": {"a.local": "10.0.0.1"}}).extra_hosts == ["a.local:10.0.0.1"]


def test_logging_driver_defaults_to_json_file():
    assert service({"logging": {"options": {"max-size": "1m"}}}).log_config == {"Type": "json-file", "Config": {"max-size": "1m"}}


# -- dependency graphs -----------------------------------------------------------------------------------------------

def assert_dependencies_first(order: list[str], graph: dict[str, list[str]]) -> None:
    position = {name: i for i, name in enumerate(order)}
    for node, deps in graph.items():
        for dep in deps:
            assert position[dep] < position[node], (dep, node, order)


def test_topological_order_puts_dependencies_first():
    graph = {"web": ["app"], "app": ["db", "cache"], "db": [], "cache": []}
    order = topological_order(graph)
    assert sorted(order) == sorted(graph)
    assert_dependencies_first(order, graph)


def test_topological_order_is_deterministic():
    graph = {"c": [], "b": [], "a": []}
    assert topological_order(graph) == ["a", "b", "c"]
    assert topological_order({"b": [], "a": [], "c": []}) == ["a", "b", "c"]


def test_topological_order_includes_dependencies_missing_from_the_graph():
    # A dependency without its own entry has no dependencies itself.
    assert topological_order({"web": ["db"]}) == ["db", "web"]


def test_topological_order_diamond_visits_each_node_once():
    graph = {"top": ["left", "right"], "left": ["base"], "right": ["base"], "base": []}
    order = topological_order(graph)
    assert len(order) == 4 and order[0] == "base" and order[-1] == "top"


@pytest.mark.parametrize(
    "graph, members",
    [
        ({"a": ["a"]}, {"a"}),
        ({"a": ["b"], "b": ["a"]}, {"a", "b"}),
        ({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}, {"a", "b", "c"}),
        ({"web": ["app"], "app": ["db"], "db": ["app"]}, {"app", "db"}),
    ],
)
def test_dependency_cycle_is_found(graph, members):
    cycle = dependency_cycle(graph)
    assert cycle is not None
    assert cycle[0] == cycle[-1]  # closed path
    assert set(cycle) == members
    assert len(cycle) == len(members) + 1
    # Each step of the reported path is a real edge.
    for source, target in zip(cycle, cycle[1:]):
        assert target in graph[source]
    with pytest.raises(StackSpecError, match="depends_on: cycle"):
        topological_order(graph)


@pytest.mark.parametrize("graph", [{}, {"a": []}, {"a": ["b"], "b": []}, {"top": ["l", "r"], "l": ["b"], "r": ["b"], "b": []}])
def test_no_dependency_cycle(graph):
    assert dependency_cycle(graph) is None


# -- parse_stack ------------------------------------------------------------------------------------------------------

def test_parse_stack_adds_default_network_when_used():
    stack = parse_stack({"services": {"web": {"image": "nginx"}}})
    assert stack.networks == {"default": {"internal": False, "labels": {}}}
    assert stack.services["web"].networks == {"default": []}


def test_parse_stack_without_default_network_when_unused():
    compose = {
        "services": {"db": {"image": "postgres", "networks": ["backend"]}},
        "networks": {"backend": {"internal": True, "labels": {"tier": "data"}}},
    }
    stack = parse_stack(compose)
    assert stack.networks == {"backend": {"internal": True, "labels": {"tier": "data"}}}


def test_parse_stack_keeps_declared_default_network():
    compose = {"services": {"web": {"image": "nginx"}}, "networks": {"default": {"internal": True}}}
    assert parse_stack(compose).networks == {"default": {"internal": True, "labels": {}}}


def test_parse_stack_volumes_and_start_order():
    compose = {
        "services": {
            "web": {"image": "nginx", "depends_on": ["app"]},
            "app": {"image": "app", "depends_on": {"db": {"condition": "service_healthy"}}, "volumes": ["state:/s"]},
            "db": {"image": "postgres", "volumes": ["db-data:/var/lib/postgresql/data"]},
        },
        "volumes": {"state": None, "db-data": None},
        "networks": {"plain": None},
    }
    stack = parse_stack(compose)
    assert stack.volumes == ["db-data", "state"]
    assert set(stack.services) == {"web", "app", "db"}
    assert stack.start_order() == ["db", "app", "web"]
    assert stack.networks["plain"] == {"internal": False, "labels": {}}


def test_parse_stack_propagates_service_errors():
    with pytest.raises(StackSpecError, match="anonymous volume"):
        parse_stack({"services": {"web": {"image": "nginx", "volumes": ["/data"]}}})


def test_parse_stack_start_order_reports_cycles():
    stack = parse_stack({"services": {"a": {"image": "x", "depends_on": ["b"]}, "b": {"image": "x", "depends_on": ["a"]}}})
    with pytest.raises(StackSpecError, match="cycle"):
        stack.start_order()
