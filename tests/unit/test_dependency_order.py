"""run_in_dependency_order: parallel where the graph allows, ordered where it does not."""
from __future__ import annotations

import threading

import pytest

from app.errors import LiveError
from app.stacks.deployer import UpstreamFailed, run_in_dependency_order


def test_independent_services_run_at_the_same_time():
    # Both must be inside work() together to pass the barrier; run one after the other, it breaks.
    barrier = threading.Barrier(2, timeout=10)
    done = []
    run_in_dependency_order({"a": [], "b": []}, lambda node: (barrier.wait(), done.append(node)))
    assert sorted(done) == ["a", "b"]


def test_dependencies_finish_before_dependents_start():
    events = []
    lock = threading.Lock()

    def work(node):
        with lock:
            events.append(("start", node))
        with lock:
            events.append(("end", node))

    graph = {"web": ["app"], "app": ["db", "cache"], "db": [], "cache": []}
    run_in_dependency_order(graph, work)
    position = {event: i for i, event in enumerate(events)}
    for node, deps in graph.items():
        for dep in deps:
            assert position[("end", dep)] < position[("start", node)]


def test_reverse_order_stops_dependents_first():
    order = []
    run_in_dependency_order({"web": ["app"], "app": ["db"], "db": []}, order.append, reverse=True)
    assert order == ["web", "app", "db"]


def test_a_failure_skips_dependents_and_is_raised():
    ran = []

    def work(node):
        if node == "db":
            raise LiveError("db broke")
        ran.append(node)

    with pytest.raises(LiveError, match="db broke") as error:
        run_in_dependency_order({"app": ["db"], "db": [], "other": []}, work)
    assert not isinstance(error.value, UpstreamFailed)
    assert ran == ["other"]
