"""The ingress proxy of swarm mode for tests: Caddy from ``scripts/build-caddy-image.sh`` run as a container on
the manager, exactly as docs/OPERATIONS.md ("The proxy in a swarm") tells an operator to run it:

- on a user-defined bridge network of its own (Docker's resolver 127.0.0.11, which resolves the swarm services
  of every overlay network the bridge connects it to later) with a fixed address on a subnet chosen here;
- its admin API listening on that address only (never on the order networks it joins), published on
  ``127.0.0.1:<free port>``, with ``origins`` naming that published address (Caddy's Host check);
- HTTPS (443) and HTTP (80) published on free 127.0.0.1 ports;
- its data (``/data``: the internal CA) and saved configuration (``/config``) in a folder of the test.

:meth:`CaddyContainer.https_get` fetches ``https://<hostname>:<port><path>`` from 127.0.0.1 with that hostname
as SNI and Host, verifying the certificate against Caddy's internal CA ``live`` (LIVE_TLS=internal).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import subprocess
from pathlib import Path

import docker
import docker.errors
import urllib3

from app.config import PROJECT_ROOT
from app.ingress.caddy import INTERNAL_CA
from tests.support.caddy import Answer, CaddyProcess, answers_ok
from tests.support.live_service import free_port
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)

#: The image the tests run (scripts/build-caddy-image.sh's default).
CADDY_IMAGE = "live/caddy:2"
BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-caddy-image.sh"
#: /29 subnets tried, in order, for the proxy's bridge network (the first the engine accepts is used).
CANDIDATE_SUBNETS = [f"172.31.{third}.{fourth}/29" for third in range(200, 256) for fourth in (0, 8)]
#: The label on every object this module creates (removed by :meth:`CaddyContainer.stop`).
LABEL = "live.test.caddy-container"


def ensure_caddy_image(client: docker.DockerClient, image: str = CADDY_IMAGE) -> str | None:
    """Build ``image`` with scripts/build-caddy-image.sh when missing; the reason when it cannot be built."""
    try:
        client.images.get(image)
        return None
    except docker.errors.ImageNotFound:
        pass
    result = subprocess.run(["bash", str(BUILD_SCRIPT), image], capture_output=True, text=True)
    return None if result.returncode == 0 else (result.stderr.strip() or result.stdout.strip())


class CaddyContainer:
    """One proxy container named ``name`` on its own bridge network ``<name>-net``; everything under ``folder``.

    After :meth:`start`: ``address`` is the container's address on that network (its admin API listens there),
    ``gateway`` the host's address on it (where the container reaches the bridge, e.g. the ask URL),
    ``admin_url`` ``http://127.0.0.1:<port>``, ``https_port`` and ``http_port`` the published ingress ports.
    """

    def __init__(self, client: docker.DockerClient, folder: Path, image: str = CADDY_IMAGE):
        self.client = client
        self.folder = Path(folder)
        self.image = image
        self.name = f"t-proxy-{secrets.token_hex(3)}"
        self.network_name = f"{self.name}-net"
        self.admin_port, self.https_port, self.http_port = free_port(), free_port(), free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.address = self.gateway = ""
        self.container = None
        self.network = None

    def start(self, timeout: float = 30) -> "CaddyContainer":
        self.network = self._create_network()
        subnet = ipaddress.ip_network(self.network.attrs["IPAM"]["Config"][0]["Subnet"])
        self.gateway, self.address = str(subnet.network_address + 1), str(subnet.network_address + 2)
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        (self.folder / "config").mkdir(parents=True, exist_ok=True)
        boot = self.folder / "boot.json"
        boot.write_text(json.dumps({"admin": {"listen": f"{self.address}:2019",
                                              "origins": [f"127.0.0.1:{self.admin_port}"]}}))
        # Created on the bridge network with its fixed address (docker run --network ... --ip ...): connected to
        # a user-defined network at create, its resolver is Docker's 127.0.0.11.
        endpoint = self.client.api.create_endpoint_config(ipv4_address=self.address)
        host_config = self.client.api.create_host_config(
            port_bindings={2019: ("127.0.0.1", self.admin_port), 443: ("127.0.0.1", self.https_port),
                           80: ("127.0.0.1", self.http_port)},
            binds={str(boot): {"bind": "/etc/caddy/boot.json", "mode": "ro"},
                   str(self.folder / "data"): {"bind": "/data", "mode": "rw"},
                   str(self.folder / "config"): {"bind": "/config", "mode": "rw"}})
        created = self.client.api.create_container(
            self.image, name=self.name, labels={LABEL: "1"}, ports=[2019, 443, 80], host_config=host_config,
            networking_config=self.client.api.create_networking_config({self.network_name: endpoint}))
        self.container = self.client.containers.get(created["Id"])
        self.container.start()
        try:
            wait_for(lambda: answers_ok(f"{self.admin_url}/config/"), timeout=timeout, interval=0.1,
                     what="the proxy container's admin API")
        except AssertionError:
            raise AssertionError(f"the proxy container did not start: {self.logs()}") from None
        return self

    def _create_network(self):
        last = None
        for subnet in CANDIDATE_SUBNETS:
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
            try:
                return self.client.networks.create(self.network_name, driver="bridge", ipam=ipam, labels={LABEL: "1"},
                                                   check_duplicate=True)
            except docker.errors.APIError as exc:  # "Pool overlaps with other one on this address space"
                last = exc
        raise AssertionError(f"no free subnet for the proxy's network: {last}")

    def logs(self, characters: int = 3000) -> str:
        return self.container.logs().decode("utf-8", "replace")[-characters:] if self.container else ""

    def networks(self) -> set[str]:
        """The names of the networks the container is connected to now."""
        self.container.reload()
        return set(self.container.attrs["NetworkSettings"]["Networks"])

    def network_address(self, network: str) -> str:
        """The container's IPv4 address on ``network``."""
        self.container.reload()
        return self.container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]

    @property
    def root_cert(self) -> Path:
        return self.folder / "data" / "caddy" / "pki" / "authorities" / INTERNAL_CA / "root.crt"

    def https_get(self, hostname: str, path: str = "/", timeout: float = 10.0) -> Answer:
        """GET ``https://<hostname><path>`` through the published HTTPS port, the certificate verified against
        the internal CA (see :meth:`tests.support.caddy.CaddyProcess.https_get`). Raises urllib3's errors."""
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", self.https_port, server_hostname=hostname,
                                           assert_hostname=hostname, cert_reqs="CERT_REQUIRED",
                                           ca_certs=str(self.root_cert), retries=False, timeout=timeout)
        with pool:
            return CaddyProcess._get(pool, path, None, f"{hostname}:{self.https_port}")

    def stop(self) -> None:
        """Remove the container, then its network (disconnecting it from every other network first)."""
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except docker.errors.NotFound:
                pass
        if self.network is not None:
            try:
                self.network.remove()
            except docker.errors.NotFound:
                pass
