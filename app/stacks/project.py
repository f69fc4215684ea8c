"""The label and naming contract of Live's objects on the engine, and :class:`Project`.

Two words, one meaning each:

- a **deployment** is the namespace of one Live installation on an engine (``LIVE_DEPLOYMENT``,
  :attr:`app.config.Settings.deployment`, the :data:`DEPLOYMENT_LABEL` label); several installations
  (staging, production) may share one engine;
- a **project** is what compose calls one (compose v1's ``Project``): one order's named set of
  containers, networks and volumes, fully rendered (:class:`Project`). A product becomes one with
  :func:`app.catalog.product.build_project`, the one way to build it: the worker builds every order's
  project with it and the catalog a sample project of every plan when it validates a product.

This module is the one place that knows the label keys, the object names and the selectors; everything
else asks it. The label keys are stored on running containers, networks and volumes: changing one
orphans what exists. Every key starts with the prefix the compose parser refuses in a product's own
labels (:data:`app.compose.parse.RESERVED_LABEL_PREFIX`), so a product can never forge one.

Objects are found by their labels, never by name (compose finds its objects by
``com.docker.compose.project`` the same way): names only have to be unique and readable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from app.compose.model import Endpoint, StackSpec

#: The Live installation (deployment) an object belongs to, on every object.
DEPLOYMENT_LABEL = "live.deployment"
#: The order's id (decimal), on every object of the order's project.
ORDER_LABEL = "live.order"
#: The order's instance identifier, on every object of the project.
INSTANCE_LABEL = "live.instance"
#: The product's slug, on every object of the project.
PRODUCT_LABEL = "live.product"
#: The label of the product revision the object was made from, on every object of the project.
REVISION_LABEL = "live.revision"
#: The compose service a container runs (compose's ``com.docker.compose.service``).
SERVICE_LABEL = "live.service"
#: The hash of what a container was created with (compose's ``com.docker.compose.config-hash``).
CONFIG_HASH_LABEL = "live.config-hash"
#: The network's name in the compose file, on each network.
NETWORK_LABEL = "live.network"
#: The volume's name in the compose file, on each named volume.
VOLUME_LABEL = "live.volume"
#: What a container that runs no service is for (:data:`ARCHIVE_HELPER_ROLE`).
ROLE_LABEL = "live.role"
#: On a replacement container: the id of the container it replaces (compose's ``com.docker.compose.replace``).
REPLACES_LABEL = "live.replaces"

#: Node labels an operator sets on Docker Swarm nodes (docs/SCALING.md): the address of the node's own Docker
#: engine (``unix:///...`` or ``tcp://...``; the bridge runs exec and volume archives there) and the placement
#: pool the node belongs to (``LIVE_SWARM_POOL``).
NODE_ENGINE_LABEL = "live.engine"
NODE_POOL_LABEL = "live.pool"

#: Every label key Live sets.
LABEL_KEYS = (DEPLOYMENT_LABEL, ORDER_LABEL, INSTANCE_LABEL, PRODUCT_LABEL, REVISION_LABEL, SERVICE_LABEL,
              CONFIG_HASH_LABEL, NETWORK_LABEL, VOLUME_LABEL, ROLE_LABEL, REPLACES_LABEL)

#: :data:`ROLE_LABEL` of the container that reads a volume into an archive (it runs no service).
ARCHIVE_HELPER_ROLE = "archive-helper"


def object_prefix(deployment: str, instance: str) -> str:
    """``<deployment>-<instance>``: the prefix of every container, network and volume name of an order
    (compose's project name)."""
    return f"{deployment}-{instance}"


def container_name(deployment: str, instance: str, service: str) -> str:
    """``<deployment>-<instance>_<service>``: the name of the container (in a swarm: the service, which the
    order's networks resolve) of ``service`` of order ``instance`` (see :meth:`Project.container_name`)."""
    return f"{object_prefix(deployment, instance)}_{service}"


def deployment_selector(deployment: str) -> dict[str, str]:
    """Labels that select every object of the Live installation ``deployment``, and only those."""
    return {DEPLOYMENT_LABEL: deployment}


def order_selector(deployment: str, order_id: int) -> dict[str, str]:
    """Labels that select every object of order ``order_id`` of the installation ``deployment``, and only those."""
    return {DEPLOYMENT_LABEL: deployment, ORDER_LABEL: str(order_id)}


def order_id_of(labels: Mapping[str, str]) -> int | None:
    """The order an object belongs to, from its labels; ``None`` when they name none (not Live's object)."""
    value = labels.get(ORDER_LABEL, "")
    return int(value) if value.isdigit() else None


def service_of(labels: Mapping[str, str]) -> str | None:
    """The compose service a container runs, from its labels; ``None`` for a container that runs none
    (an archive helper)."""
    return labels.get(SERVICE_LABEL)


@dataclass
class Project:
    """One order's project: its containers, networks and volumes as the compose file renders them.

    ``stack`` is the parsed compose model, ``endpoints`` the product's published endpoints,
    ``pinned_ports`` the host port recorded per ``"service:port"`` endpoint, ``deployment`` the
    installation the project's objects are labelled and named for, ``node`` the swarm node the order is placed
    on (None on one engine).
    """

    order_id: int
    instance: str
    product: str
    revision: str
    hostname: str
    stack: StackSpec
    endpoints: list[Endpoint] = field(default_factory=list)
    pinned_ports: dict[str, int] = field(default_factory=dict)  # "service:port" -> host port
    # Several Live installations may share one engine; each labels and names its own objects.
    deployment: str = "live"
    # The swarm node (id) every container and volume of the order is placed on (app/stacks/placement.py);
    # None on one engine.
    node: str | None = None

    @property
    def prefix(self) -> str:
        """:func:`object_prefix` of this project."""
        return object_prefix(self.deployment, self.instance)

    @property
    def selector(self) -> dict[str, str]:
        """Labels that select every object of this order, and only those (:func:`order_selector`)."""
        return order_selector(self.deployment, self.order_id)

    def container_name(self, service: str) -> str:
        """``<deployment>-<instance>_<service>``: an instance has no ``_`` (nor has a deployment), so the first
        ``_`` ends the order's prefix and two orders can never make the same name (with ``-``, order ``shop``'s
        service ``db-main`` and order ``shop-db``'s service ``main`` did). Containers made before keep their
        names: convergence finds containers by their labels, never by name."""
        return container_name(self.deployment, self.instance, service)

    def network_name(self, network: str) -> str:
        """``<deployment>-<instance>_<network>`` for the compose file's network ``network``."""
        return f"{self.prefix}_{network}"

    def volume_name(self, volume: str) -> str:
        """``<deployment>-<instance>_<volume>`` for the compose file's named volume ``volume``."""
        return f"{self.prefix}_{volume}"

    @property
    def archive_helper_name(self) -> str:
        """``<deployment>-<instance>-archive``: the one archive helper container of the order at a time."""
        return f"{self.prefix}-archive"

    def base_labels(self) -> dict[str, str]:
        """The labels on every object of the project: deployment, order, instance, product, revision."""
        return {
            DEPLOYMENT_LABEL: self.deployment,
            ORDER_LABEL: str(self.order_id),
            INSTANCE_LABEL: self.instance,
            PRODUCT_LABEL: self.product,
            REVISION_LABEL: self.revision,
        }

    def container_labels(self, service: str, config_hash: str) -> dict[str, str]:
        """Live's labels of the container of ``service`` created with ``config_hash``."""
        return {**self.base_labels(), SERVICE_LABEL: service, CONFIG_HASH_LABEL: config_hash}

    def network_labels(self, network: str) -> dict[str, str]:
        """Live's labels of the compose file's network ``network``."""
        return {**self.base_labels(), NETWORK_LABEL: network}

    def volume_labels(self, volume: str) -> dict[str, str]:
        """Live's labels of the compose file's named volume ``volume``."""
        return {**self.base_labels(), VOLUME_LABEL: volume}

    def archive_helper_labels(self) -> dict[str, str]:
        """Live's labels of the archive helper: the order's (so terminate finds a leftover one) and its role."""
        return {**self.base_labels(), ROLE_LABEL: ARCHIVE_HELPER_ROLE}

