"""How a swarm service and its tasks read as one container (app/stacks/swarm_engine._service_state), on the
JSON shapes Docker Engine 20.10 answers (GET /services, GET /tasks)."""
from __future__ import annotations

from app.stacks.swarm_engine import _service_state

HASH = "h1"


def service(replicas=1, healthcheck=True, restart="any", config_hash=HASH):
    container_spec = {"Image": "img", "Labels": {"live.service": "web", "live.config-hash": config_hash}}
    if healthcheck:
        container_spec["Healthcheck"] = {"Test": ["CMD", "true"], "Interval": 500_000_000}
    return {"ID": "svc1", "Version": {"Index": 10},
            "Spec": {"Name": "live-acme_web", "Labels": {"live.service": "web", "live.config-hash": config_hash},
                     "TaskTemplate": {"ContainerSpec": container_spec, "RestartPolicy": {"Condition": restart}},
                     "Mode": {"Replicated": {"Replicas": replicas}}}}


def task(state, desired="running", index=20, config_hash=HASH, err=None, exit_code=0, node="n1"):
    status = {"State": state, "Message": state, "ContainerStatus": {"ContainerID": "c" * 64, "ExitCode": exit_code}}
    if err:
        status["Err"] = err
    return {"ID": f"t{index}", "ServiceID": "svc1", "NodeID": node, "DesiredState": desired,
            "Version": {"Index": index}, "Status": status,
            "Spec": {"ContainerSpec": {"Labels": {"live.config-hash": config_hash}}}}


def test_a_running_task_with_a_healthcheck_is_healthy_and_names_its_node():
    state = _service_state(service(), [task("running", node="n7")])
    assert (state.id, state.name, state.state, state.health, state.node) == ("svc1", "live-acme_web", "running",
                                                                             "healthy", "n7")
    assert state.service == "web" and state.running


def test_a_task_without_a_healthcheck_runs_without_health():
    assert _service_state(service(healthcheck=False), [task("running")]).health is None


def test_starting_means_waiting_for_health_or_not_yet_running():
    assert (_service_state(service(), [task("starting")]).state,
            _service_state(service(), [task("starting")]).health) == ("running", "starting")
    assert _service_state(service(healthcheck=False), [task("starting")]).state == "created"


def test_a_scheduled_but_unstarted_task_or_none_at_all_is_created():
    for pending in ("new", "pending", "assigned", "accepted", "preparing", "ready"):
        assert _service_state(service(), [task(pending)]).state == "created"
    assert _service_state(service(), []).state == "created"


def test_a_task_of_the_previous_spec_is_not_taken_for_the_new_one():
    # Right after an update swarm may still list the old task as the one to run: not "running" yet.
    state = _service_state(service(config_hash="h2"), [task("running", config_hash="h1")])
    assert state.state == "created"


def test_scaled_to_zero_reads_exited_even_while_the_manager_still_lists_the_task_running():
    # So a deploy right after a stop starts it again (a "running" service would be left as it is).
    assert _service_state(service(replicas=0), [task("shutdown", desired="shutdown", exit_code=143)]).state == "exited"
    assert _service_state(service(replicas=0), [task("running", desired="shutdown")]).state == "exited"
    assert _service_state(service(replicas=0), []).state == "exited"


def test_the_newest_task_decides():
    tasks = [task("failed", desired="shutdown", index=5, exit_code=1), task("running", index=9)]
    assert _service_state(service(), tasks).state == "running"


def test_a_failed_task_restarts_unless_its_policy_is_none_and_unhealthy_is_said():
    failed = task("failed", desired="running", exit_code=137, err="task: non-zero exit (137): dockerexec: unhealthy container")
    state = _service_state(service(), [failed])
    assert (state.state, state.health, state.exit_code) == ("restarting", "unhealthy", 137)
    once = _service_state(service(restart="none"), [task("failed", exit_code=3, err="task: non-zero exit (3)")])
    assert (once.state, once.exit_code) == ("exited", 3)


def test_a_completed_task_exited_zero_and_a_rejected_one_is_dead_with_the_reason():
    assert (_service_state(service(restart="none"), [task("complete")]).state,
            _service_state(service(restart="none"), [task("complete")]).exit_code) == ("exited", 0)
    rejected = _service_state(service(), [task("rejected", err="No such image: live-test/missing:1")])
    assert (rejected.state, rejected.error) == ("dead", "No such image: live-test/missing:1")


def test_a_node_engine_over_tcp_needs_tls_from_docker_cert_path(tmp_path):
    import pytest

    from app.errors import EngineOperationError
    from app.stacks.swarm_engine import node_tls

    assert node_tls("unix:///run/live-node2/docker.sock", "n2", "") is None
    assert node_tls("ssh://live@n2", "n2", "") is None
    with pytest.raises(EngineOperationError, match=r"swarm node n2: its engine tcp://10.0.0.2:2376 is reached over TCP, "
                                                   r"which needs TLS: ca.pem, cert.pem, key.pem missing \(DOCKER_CERT_PATH"):
        node_tls("tcp://10.0.0.2:2376", "n2", "")
    (tmp_path / "ca.pem").write_text("ca")
    with pytest.raises(EngineOperationError, match=f"cert.pem, key.pem missing in DOCKER_CERT_PATH \\({tmp_path}\\)"):
        node_tls("tcp://10.0.0.2:2376", "n2", str(tmp_path))
    (tmp_path / "cert.pem").write_text("cert")
    (tmp_path / "key.pem").write_text("key")
    files = node_tls("tcp://10.0.0.2:2376", "n2", str(tmp_path))
    assert files == (str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    from app.stacks.docker_engine import DockerEngine

    tls = DockerEngine("tcp://10.0.0.2:2376", tls=files)._tls_config()
    assert tls.verify is True and tls.ca_cert == files[0] and tls.cert == files[1:]
    with pytest.raises(EngineOperationError, match="is not unix://, ssh:// or tcp://"):
        node_tls("10.0.0.2:2376", "n2", str(tmp_path))


def test_a_task_swarm_replaced_after_a_failure_reads_as_restarting_with_the_failure():
    """Swarm sets a failed task's desired state to shutdown and starts a new one at once: the failure is on the
    task before the newest one."""
    killed = task("failed", desired="shutdown", index=5, exit_code=137,
                  err="task: non-zero exit (137): dockerexec: unhealthy container")
    state = _service_state(service(), [killed, task("starting", index=9)])
    assert (state.state, state.health, state.exit_code) == ("restarting", "unhealthy", 137)
    assert "unhealthy container" in state.error
    crashed = task("failed", desired="shutdown", index=5, exit_code=2, err="task: non-zero exit (2)")
    state = _service_state(service(healthcheck=False), [crashed, task("pending", index=9)])
    assert (state.state, state.health, state.exit_code) == ("restarting", None, 2)
    old = task("failed", desired="shutdown", index=5, exit_code=2, config_hash="h0")  # a failure of the old spec
    assert _service_state(service(), [old, task("starting", index=9)]).state == "running"


def test_a_task_swarm_cannot_place_is_dead_with_the_reason():
    state = _service_state(service(), [task("pending", err="no suitable node (insufficient resources on 2 nodes)")])
    assert (state.state, state.error) == ("dead", "no suitable node (insufficient resources on 2 nodes)")


def test_scaled_up_before_swarm_made_the_new_task_reads_created_not_the_old_task():
    """Right after an unsuspend (0 -> 1 replica) the only tasks are the stopped ones, whose desired state is
    shutdown (the manager may even still list the last one running): nothing runs for the new spec yet."""
    for old_state in ("running", "shutdown", "complete"):
        assert _service_state(service(), [task(old_state, desired="shutdown")]).state == "created"
