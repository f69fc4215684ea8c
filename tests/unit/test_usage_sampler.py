"""The background usage sampler (app/orders/usage.py) on the in-memory engine, with fake /sys/fs/cgroup trees.

A pass costs a constant number of engine calls whatever the number of orders when cgroup files are readable;
df is called once per disk interval and never twice at once; the usage answer is read from ``order_usage``
(the engine is not asked, and an order not sampled yet says so with ``sampled_at: null``).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.errors import EngineUnavailable
from app.models import Order, OrderUsage
from app.orders.service import CustomerInfo
from app.orders.usage import MB, CgroupReader, UsageSampler, _RateBound, usage_answers
from app.stacks.engine import ContainerState
from app.stacks.project import order_selector

MEMORY_LIMIT_MB = 128.0  # busybox-demo's small plan: db 64m + app 64m; web has none (so the order has none)


def make_orders(fake_live, count: int, start: int = 1) -> list[Order]:
    """``count`` active orders of busybox-demo (3 containers each, 2 volumes), run by the worker."""
    ids = []
    for number in range(start, start + count):
        outcome = fake_live.orders.create(service_id=number, customer=CustomerInfo(email=f"o{number}@example.org"),
                                     product="busybox-demo", plan="small", username=f"order{number}")
        ids.append(outcome.order.id)
    fake_live.worker().run_until_idle(timeout=120)
    return list(Order.select().where(Order.id.in_(ids)).order_by(Order.id))


def fake_cgroup_v1(root: Path, container_id: str, *, memory: int, inactive: int, cpu_ns: int,
                   systemd: bool = False, cpu_folder: str = "cpuacct") -> None:
    parent = f"system.slice/docker-{container_id}.scope" if systemd else f"docker/{container_id}"
    folder = root / "memory" / parent
    folder.mkdir(parents=True)
    (folder / "memory.usage_in_bytes").write_text(f"{memory}\n")
    (folder / "memory.stat").write_text(f"cache 5\ninactive_file 1\ntotal_inactive_file {inactive}\n")
    folder = root / cpu_folder / parent
    folder.mkdir(parents=True)
    (folder / "cpuacct.usage").write_text(f"{cpu_ns}\n")


def fake_cgroup_v2(root: Path, container_id: str, *, memory: int, inactive: int, cpu_us: int,
                   systemd: bool = False) -> None:
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    folder = root / (f"system.slice/docker-{container_id}.scope" if systemd else f"docker/{container_id}")
    folder.mkdir(parents=True)
    (folder / "memory.current").write_text(f"{memory}\n")
    (folder / "memory.stat").write_text(f"anon 10\nfile 20\ninactive_file {inactive}\nactive_file 3\n")
    (folder / "cpu.stat").write_text(f"usage_usec {cpu_us}\nuser_usec 1\nsystem_usec 2\n")


def sampler(fake_live, fake_engine, cgroups=None, **kwargs) -> UsageSampler:
    return UsageSampler(fake_engine, fake_live.settings.deployment, fake_live.runner.project, cgroups=cgroups,
                        stats_per_second=kwargs.pop("stats_per_second", 1000.0), **kwargs)


# -- cgroup files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("systemd", [False, True], ids=["cgroupfs", "systemd"])
@pytest.mark.parametrize("cpu_folder", ["cpuacct", "cpu,cpuacct"])
def test_cgroup_v1_memory_without_page_cache_and_cpu_seconds(tmp_path, systemd, cpu_folder):
    fake_cgroup_v1(tmp_path, "abc123", memory=50 * MB, inactive=10 * MB, cpu_ns=2_500_000_000, systemd=systemd,
                   cpu_folder=cpu_folder)
    reader = CgroupReader(tmp_path)
    assert reader.version == 1
    assert reader.read("abc123") == (40.0 * MB, 2.5)
    assert reader.read("other") is None, "no cgroup here: not local, the engine is asked"


@pytest.mark.parametrize("systemd", [False, True], ids=["cgroupfs", "systemd"])
def test_cgroup_v2_memory_without_page_cache_and_cpu_seconds(tmp_path, systemd):
    fake_cgroup_v2(tmp_path, "abc123", memory=30 * MB, inactive=5 * MB, cpu_us=1_250_000, systemd=systemd)
    reader = CgroupReader(tmp_path)
    assert reader.version == 2
    assert reader.read("abc123") == (25.0 * MB, 1.25)
    assert reader.read("other") is None


def test_cgroup_reads_never_go_outside_the_tree_and_a_vanished_file_reads_idle(tmp_path):
    fake_cgroup_v1(tmp_path, "abc", memory=10, inactive=0, cpu_ns=0)
    reader = CgroupReader(tmp_path)
    assert reader.read("") is None and reader.read("../memory") is None and reader.read("..") is None
    (tmp_path / "memory" / "docker" / "abc" / "memory.stat").unlink()  # the container stopped meanwhile
    assert reader.read("abc") == (0.0, 0.0)


def test_cgroup_v1_without_a_cpu_controller_is_not_local(tmp_path):
    fake_cgroup_v1(tmp_path, "abc", memory=10, inactive=0, cpu_ns=0, cpu_folder="elsewhere")
    assert CgroupReader(tmp_path).read("abc") is None


# -- a sampling pass ---------------------------------------------------------------------------------------------
def test_a_pass_costs_one_engine_call_whatever_the_number_of_orders_with_cgroup_files(fake_live, fake_engine, tmp_path):
    cgroups = CgroupReader(tmp_path)
    usage = sampler(fake_live, fake_engine, cgroups)
    calls = {}
    for count, start in ((2, 1), (6, 10)):
        make_orders(fake_live, count, start)
        for container in fake_engine.containers.values():
            if not (tmp_path / "memory" / "docker" / container.id).exists():
                fake_cgroup_v1(tmp_path, container.id, memory=3 * MB, inactive=MB, cpu_ns=10**9)
        before = fake_engine.api_calls
        done = usage.sample()
        calls[count] = fake_engine.api_calls - before
        orders = Order.select().count()
        assert (done.orders, done.cgroup_reads, done.stats_calls) == (orders, 3 * orders, 0)
    assert calls == {2: 1, 6: 1}, "one listing, no stats call: calls constant in the number of orders"
    answer = usage_answers()
    assert len(answer) == 8
    assert all(a["memory_mb"] == 6.0 and a["cpu_seconds"] == 3.0 and a["containers_running"] == 3
               and a["containers_total"] == 3 and a["sampled_at"] for a in answer)


def test_without_cgroup_files_each_running_container_costs_one_stats_call(fake_live, fake_engine):
    orders = make_orders(fake_live, 2)
    for container in fake_engine.containers.values():
        fake_engine.usage[container.id] = (2 * MB, 0.5)
    victim = next(c for c in fake_engine.containers.values() if c.labels.get("live.order") == str(orders[0].id))
    fake_engine.stop_container(victim.id, 1)
    running = sum(1 for c in fake_engine.containers.values() if c.state == "running")
    before = fake_engine.api_calls
    done = sampler(fake_live, fake_engine).sample()
    assert fake_engine.api_calls - before == 1 + running
    assert (done.stats_calls, done.cgroup_reads) == (running, 0)
    by_service = {a["service_id"]: a for a in usage_answers()}
    first = by_service[orders[0].whmcs_service_id]
    assert first["containers_running"] == 2 and first["containers_total"] == 3
    assert first["memory_mb"] == 2.0 * first["containers_running"]
    assert first["cpu_seconds"] == 0.5 * first["containers_running"]


def test_stats_calls_are_spaced_by_the_rate_bound():
    waits = []

    class Recording:
        @staticmethod
        def wait(delay):
            waits.append(round(delay, 6))
            return False

    bound = _RateBound(4.0, clock=lambda: 100.0, stopping=Recording())
    assert all(bound.wait() for _ in range(4))
    assert waits == [0.0, 0.25, 0.5, 0.75], "at most 4 starts a second, whatever the threads"


def test_a_stopped_sampler_makes_no_more_stats_calls_and_writes_nothing(fake_live, fake_engine):
    make_orders(fake_live, 1)
    usage = sampler(fake_live, fake_engine)
    usage.stop()
    before = fake_engine.api_calls
    done = usage.sample()
    assert fake_engine.api_calls - before == 1 and done.stats_calls == 0
    assert OrderUsage.select().count() == 0


def test_a_node_that_cannot_be_reached_keeps_the_orders_previous_sample(fake_live, fake_engine):
    orders = make_orders(fake_live, 2)
    usage = sampler(fake_live, fake_engine)
    usage.sample()
    first = OrderUsage.get(OrderUsage.order == orders[0].id)
    unreachable = {c.id for c in fake_engine.containers.values() if c.labels.get("live.order") == str(orders[0].id)}
    original = fake_engine.running_usage

    def node_down(container):
        if container.id in unreachable:
            raise EngineUnavailable("cannot reach the engine of swarm node n2")
        return original(container)

    fake_engine.running_usage = node_down
    done = usage.sample()
    assert done.stats_failures == 3 and done.orders == 1
    assert OrderUsage.get(OrderUsage.order == orders[0].id).sampled_at == first.sampled_at
    assert OrderUsage.get(OrderUsage.order == orders[1].id).sampled_at >= first.sampled_at


def test_a_swarm_task_is_read_by_its_task_container_locally_or_on_its_node(fake_live, fake_engine, tmp_path):
    """Swarm: the listing gives each service's running task container and node; cgroup files of this machine when
    they exist (the manager's own tasks), else one stats call to that node's engine (Engine.running_usage)."""
    orders = make_orders(fake_live, 1)
    listed = fake_engine.list_containers(order_selector(fake_live.settings.deployment, orders[0].id))
    tasks = {c.id: (f"task{i:02d}" + "0" * 58, "node-local" if i == 0 else "node-other") for i, c in enumerate(listed)}
    fake_cgroup_v1(tmp_path, tasks[listed[0].id][0], memory=7 * MB, inactive=0, cpu_ns=0)
    asked = []
    original_list = fake_engine.list_containers

    def as_swarm(labels):
        return [ContainerState(**{**vars(c), "task_container": tasks[c.id][0], "node": tasks[c.id][1]})
                for c in original_list(labels)]

    def node_engine_stats(container):
        asked.append((container.node, container.task_container))
        return float(MB), 0.0

    fake_engine.list_containers, fake_engine.running_usage = as_swarm, node_engine_stats
    done = sampler(fake_live, fake_engine, CgroupReader(tmp_path)).sample()
    assert (done.cgroup_reads, done.stats_calls) == (1, 2)
    assert sorted(asked) == sorted(("node-other", tasks[c.id][0]) for c in listed[1:])
    assert usage_answers()[0]["memory_mb"] == 9.0


def test_a_swarm_service_names_its_running_task_container_and_its_node_engine_is_asked_once():
    from app.stacks.swarm_engine import SwarmEngine, _service_state

    spec = {"Name": "live-acme_web", "Labels": {"live.order": "1"}, "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": "img"}}}
    task = {"ID": "t1", "ServiceID": "svc1", "NodeID": "n2", "DesiredState": "running", "Version": {"Index": 5},
            "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c" * 64}}, "Spec": {"ContainerSpec": {}}}
    listed = _service_state({"ID": "svc1", "Spec": spec}, [task])
    assert (listed.id, listed.task_container, listed.node) == ("svc1", "c" * 64, "n2")
    assert _service_state({"ID": "svc1", "Spec": spec}, []).task_container is None, "no task runs"

    asked = []

    class NodeEngine:
        @staticmethod
        def container_usage(container_id):
            asked.append(container_id)
            return 5.0 * MB, 1.5

    swarm = SwarmEngine.__new__(SwarmEngine)  # no manager: only the node's engine may be asked
    swarm.node_engine = lambda node: asked.append(node) or NodeEngine()
    assert swarm.running_usage(listed) == (5.0 * MB, 1.5)
    assert asked == ["n2", "c" * 64], "one stats call to the node's engine, no task lookup on the manager"


def test_memory_limits_are_rendered_once_per_revision_and_plan(fake_live, fake_engine):
    make_orders(fake_live, 3)
    rendered = []

    def render(order):
        rendered.append(order.id)
        return fake_live.runner.project(order)

    usage = UsageSampler(fake_engine, fake_live.settings.deployment, render, stats_per_second=1000.0)
    usage.sample()
    usage.sample()
    assert len(rendered) == 1, "three orders of one revision and plan, two passes: one render"
    assert {a["memory_limit_mb"] for a in usage_answers()} == {None}, "web has no limit: the order has none"


def test_memory_limit_is_the_sum_of_the_services_limits(fake_live, fake_engine):
    orders = make_orders(fake_live, 1)
    project = fake_live.runner.project(orders[0])
    for service in project.stack.services.values():
        service.mem_limit = service.mem_limit or 32 * MB
    usage = UsageSampler(fake_engine, fake_live.settings.deployment, lambda order: project, stats_per_second=1000.0)
    usage.sample()
    assert usage_answers()[0]["memory_limit_mb"] == MEMORY_LIMIT_MB + 32.0


# -- disk ----------------------------------------------------------------------------------------------------------
def test_disk_is_one_df_for_every_order(fake_live, fake_engine):
    orders = make_orders(fake_live, 3)
    volume = next(v for v in fake_engine.volumes.values() if v.labels.get("live.order") == str(orders[0].id))
    fake_engine.write_file(volume.name, "blob", b"x" * (3 * MB))
    usage = sampler(fake_live, fake_engine)
    before = fake_engine.api_calls
    assert usage.sample_disk() == 3
    assert fake_engine.api_calls - before == 1
    disk = {a["service_id"]: a["disk_mb"] for a in usage_answers()}
    assert disk[orders[0].whmcs_service_id] >= 3.0 and disk[orders[1].whmcs_service_id] < 1.0


def test_the_disk_of_orders_on_a_node_that_was_not_read_stays_unknown_never_0(fake_live, fake_engine):
    orders = make_orders(fake_live, 2)
    Order.update(node="n-down").where(Order.id == orders[0].id).execute()
    Order.update(node="n-up").where(Order.id == orders[1].id).execute()
    fake_engine.unread_nodes = {"n-down"}
    usage = sampler(fake_live, fake_engine)

    assert usage.sample_disk() == 1

    disk = {a["service_id"]: (a["disk_mb"], a["disk_sampled_at"]) for a in usage_answers()}
    assert disk[orders[0].whmcs_service_id] == (None, None)  # not "0 MB, measured now"
    assert disk[orders[1].whmcs_service_id][1] is not None


def test_df_is_never_called_twice_at_once(fake_live, fake_engine):
    make_orders(fake_live, 1)
    inside, release, active, most = threading.Event(), threading.Event(), [0], [0]
    original = fake_engine.volume_usage

    def slow_df(labels):
        active[0] += 1
        most[0] = max(most[0], active[0])
        inside.set()
        release.wait(10)
        try:
            return original(labels)
        finally:
            active[0] -= 1

    fake_engine.volume_usage = slow_df
    usage = sampler(fake_live, fake_engine)
    results = []

    def disk():
        with fake_live.db.connection_context():
            results.append(usage.sample_disk())

    first = threading.Thread(target=disk)
    first.start()
    assert inside.wait(10)
    others = [threading.Thread(target=disk) for _ in range(4)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(10)
    release.set()
    first.join(10)
    assert most[0] == 1, "one df at a time: the engine refuses a second one"
    assert sorted(results, key=lambda r: r is None) == [1, None, None, None, None]


def test_tick_samples_memory_every_sample_interval_and_disk_every_disk_interval(fake_live, fake_engine):
    make_orders(fake_live, 1)
    now = [1000.0]
    usage = sampler(fake_live, fake_engine, sample_seconds=30, disk_seconds=300, clock=lambda: now[0])
    assert usage.tick_seconds == 30
    dfs = []
    original = fake_engine.volume_usage
    fake_engine.volume_usage = lambda labels: dfs.append(now[0]) or original(labels)
    passes = []
    original_sample = usage.sample
    usage.sample = lambda: passes.append(now[0]) or original_sample()
    for _ in range(21):  # ten minutes of ticks every 30 s
        usage.tick()
        now[0] += 30
    assert dfs == [1000.0, 1300.0, 1600.0]
    assert len(passes) == 21


# -- the answer ----------------------------------------------------------------------------------------------------
def test_an_order_not_sampled_yet_answers_null_figures_and_the_engine_is_never_asked(fake_live, fake_engine):
    orders = make_orders(fake_live, 2)
    usage = sampler(fake_live, fake_engine)
    usage.sample()
    late = make_orders(fake_live, 1, start=50)[0]
    fake_engine.reachable = False  # the answer reads the table only
    before = fake_engine.api_calls
    answer = {a["service_id"]: a for a in fake_live.queries.usage()}
    assert fake_engine.api_calls == before
    assert answer[late.whmcs_service_id] == {
        "service_id": late.whmcs_service_id, "status": "active", "sampled_at": None, "memory_mb": None,
        "memory_limit_mb": None, "cpu_seconds": None, "containers_running": None, "containers_total": None,
        "disk_sampled_at": None, "disk_mb": None, "backup_mb": 0.0}
    sampled = answer[orders[0].whmcs_service_id]
    assert sampled["sampled_at"].endswith("Z") and sampled["containers_total"] == 3
    assert sampled["disk_sampled_at"] is None and sampled["disk_mb"] is None, "disk has its own time"
    assert [a["service_id"] for a in fake_live.queries.usage([late.whmcs_service_id])] == [late.whmcs_service_id]


def test_terminated_orders_are_not_answered_and_their_rows_go(fake_live, fake_engine):
    orders = make_orders(fake_live, 2)
    usage = sampler(fake_live, fake_engine)
    usage.sample()
    fake_live.orders.terminate(orders[0])
    fake_live.worker().run_until_idle(timeout=60)
    usage.sample()
    assert [a["service_id"] for a in usage_answers()] == [orders[1].whmcs_service_id]
    assert OrderUsage.select().where(OrderUsage.order == orders[0].id).count() == 0


def test_the_answer_is_one_query(fake_live, fake_engine, monkeypatch):
    orders = make_orders(fake_live, 1)
    usage = sampler(fake_live, fake_engine)
    usage.sample()
    queries = []
    original = fake_live.db.execute_sql

    def counting(sql, *args, **kwargs):
        queries.append(sql)
        return original(sql, *args, **kwargs)

    monkeypatch.setattr(fake_live.db, "execute_sql", counting)
    answer = usage_answers()
    assert len(queries) == 1 and len(answer) == len(orders)


def test_the_worker_runs_the_sampler_built_from_the_settings(fake_live):
    worker = fake_live.worker()
    assert isinstance(worker.usage, UsageSampler)
    assert (worker.usage.sample_seconds, worker.usage.disk_seconds) == (30.0, 300.0)
    assert worker.usage.tick_seconds == 30.0
    assert isinstance(worker.usage.cgroups, CgroupReader)


# -- settings --------------------------------------------------------------------------------------------------------
def test_the_usage_settings_are_read():
    from app.config import load_settings

    defaults = load_settings({})
    assert (defaults.usage_sample_seconds, defaults.usage_disk_seconds,
            defaults.usage_stats_per_second) == (30, 300, 10)
    settings = load_settings({"LIVE_USAGE_SAMPLE_SECONDS": "5", "LIVE_USAGE_DISK_SECONDS": "60",
                              "LIVE_USAGE_STATS_PER_SECOND": "2.5"})
    assert (settings.usage_sample_seconds, settings.usage_disk_seconds, settings.usage_stats_per_second) == (5, 60, 2.5)


@pytest.mark.parametrize("env, message", [
    ({"LIVE_USAGE_SAMPLE_SECONDS": "0.5"}, "LIVE_USAGE_SAMPLE_SECONDS must be at least 1.0"),
    ({"LIVE_USAGE_DISK_SECONDS": "1"}, "LIVE_USAGE_DISK_SECONDS must be at least 10.0"),
    ({"LIVE_USAGE_STATS_PER_SECOND": "0"}, "LIVE_USAGE_STATS_PER_SECOND must be at least 0.1"),
    ({"LIVE_USAGE_STATS_PER_SECOND": "fast"}, "LIVE_USAGE_STATS_PER_SECOND must be a number, got 'fast'"),
])
def test_bad_usage_settings_are_named(env, message):
    from app.config import load_settings
    from app.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_settings(env)
