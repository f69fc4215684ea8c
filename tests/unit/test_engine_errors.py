"""Engine errors translated at the adapter: outages are retried, refusals are not (QA finding, issue 9 item 7)."""
from __future__ import annotations

import docker.errors
import pytest
import requests

from app.errors import EngineOperationError, EngineUnavailable, HostPortInUse
from app.stacks.docker_engine import translate_errors


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"{status} Server Error", response=response, explanation=explanation)


@pytest.mark.parametrize("explanation", [
    'failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: '
    'error during container init: error setting rlimits for ready process: error setting rlimit type 7: '
    'operation not permitted',
    "mkdir /var/lib/docker/volumes/live-x_vvvv: file name too long",
    "uids and gids must be in range 0-2147483647",
    'unable to find user 99999999999999999999: no matching entries in passwd file',
    "max-size must be a positive number",
])
def test_an_engine_500_that_will_never_succeed_is_a_refusal_not_an_outage(explanation):
    with pytest.raises(EngineOperationError) as refused:
        with translate_errors("create container live-x_app"):
            raise api_error(500, explanation)
    assert not refused.value.transient and refused.value.code == "engine_refused"
    assert explanation in str(refused.value) and explanation not in refused.value.public


@pytest.mark.parametrize("explanation", [
    'connection error: desc = "transport: Error while dialing dial unix /run/containerd/containerd.sock: '
    'connect: connection refused"',
    "context deadline exceeded",
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
    "error while creating mount source path: device or resource busy",
    "dial tcp 10.0.0.5:2376: i/o timeout",
    # The engine stopping (found by tests/reliability/test_engine_restart.py in CI): libnetwork's store is closed.
    "failed to update store for object type *libnetwork.endpoint: open : no such file or directory",
])
def test_an_engine_500_of_an_engine_in_trouble_is_retried(explanation):
    with pytest.raises(EngineUnavailable) as unavailable:
        with translate_errors("start container 1234"):
            raise api_error(500, explanation)
    assert unavailable.value.transient


def test_a_4xx_is_always_a_refusal():
    with pytest.raises(EngineOperationError):
        with translate_errors("create container x"):
            raise api_error(409, 'Conflict. The container name "/x" is already in use')


@pytest.mark.parametrize(("explanation", "port"), [
    ("driver failed programming external connectivity on endpoint live-x_web (3f2a): Bind for 127.0.0.1:20001 "
     "failed: port is already allocated", 20001),
    ("driver failed programming external connectivity on endpoint live-x_web (3f2a): Error starting userland proxy: "
     "listen tcp4 127.0.0.1:20002: bind: address already in use", 20002),
    ("driver failed programming external connectivity on endpoint x: Bind for :::8080 failed: port is already "
     "allocated", 8080),
])
def test_a_taken_host_port_is_its_own_refusal_naming_the_port(explanation, port):
    with pytest.raises(HostPortInUse) as taken:
        with translate_errors("start container 1234"):
            raise api_error(500, explanation)
    assert taken.value.details["port"] == port and not taken.value.transient
    assert isinstance(taken.value, EngineOperationError) and taken.value.code == "engine_refused"


class _DiskUsageApi:
    """``df()`` refused ``busy`` times with the engine's "already running" answer, then a report with one volume."""

    def __init__(self, busy: int, explanation: str = "a disk usage operation is already running"):
        self.busy, self.explanation, self.calls = busy, explanation, 0

    def df(self):
        self.calls += 1
        if self.calls <= self.busy:
            raise api_error(500, self.explanation)
        return {"Volumes": [{"Name": "live-x_data", "Labels": {"k": "v"}, "UsageData": {"Size": 4096}}]}


def _engine_over(fake_api):
    from app.stacks.docker_engine import DockerEngine

    class Engine(DockerEngine):
        api = fake_api
    return Engine()


def test_a_disk_usage_read_refused_because_another_runs_is_asked_again(monkeypatch):
    # Docker 20.10 serves one `system df` at a time: the worker's sampler and another client collide (seen in CI).
    monkeypatch.setattr("app.stacks.docker_engine.time.sleep", lambda seconds: None)
    fake = _DiskUsageApi(busy=3)
    usage = _engine_over(fake).volume_usage({"k": "v"})
    assert fake.calls == 4 and [(v.name, v.size) for v in usage.volumes] == [("live-x_data", 4096)]


def test_a_disk_usage_read_busy_past_the_deadline_or_refused_otherwise_is_an_error(monkeypatch):
    monkeypatch.setattr("app.stacks.docker_engine.time.sleep", lambda seconds: None)
    monkeypatch.setattr("app.stacks.docker_engine.DF_WAIT_SECONDS", 0.0)
    with pytest.raises(EngineOperationError, match="read disk usage: a disk usage operation is already running"):
        _engine_over(_DiskUsageApi(busy=100)).volume_usage({"k": "v"})
    other = _DiskUsageApi(busy=1, explanation="some other refusal")
    with pytest.raises(EngineOperationError, match="some other refusal"):
        _engine_over(other).volume_usage({"k": "v"})
    assert other.calls == 1, "only the busy answer is asked again"
