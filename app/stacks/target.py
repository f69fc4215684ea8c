"""One order's desired stack (:class:`DeploymentTarget`).

A product becomes one with :func:`app.catalog.product.build_target`, the one
way to build it: the worker builds every order's target with it and the
catalog a sample target of every plan when it validates a product.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.compose.model import Endpoint, StackSpec
from app.naming import object_prefix


@dataclass
class DeploymentTarget:
    """One order's desired stack, fully rendered."""

    order_id: int
    instance: str
    product: str
    revision: str
    hostname: str
    stack: StackSpec
    endpoints: list[Endpoint] = field(default_factory=list)
    pinned_ports: dict[str, int] = field(default_factory=dict)  # "service:port" -> host port
    tls: bool = True
    # Several Live installations may share one engine; each labels and names its own objects.
    deployment: str = "live"

    @property
    def prefix(self) -> str:
        return object_prefix(self.deployment, self.instance)

    @property
    def selector(self) -> dict[str, str]:
        """Labels that select every object of this order, and only those."""
        return {"live.deployment": self.deployment, "live.order": str(self.order_id)}

    def container_name(self, service: str) -> str:
        """``<deployment>-<instance>_<service>``: an instance has no ``_`` (nor has a deployment), so the first
        ``_`` ends the order's prefix and two orders can never make the same name (with ``-``, order ``shop``'s
        service ``db-main`` and order ``shop-db``'s service ``main`` did). Containers made before keep their
        names: convergence finds containers by their labels, never by name."""
        return f"{self.prefix}_{service}"

    def network_name(self, network: str) -> str:
        return f"{self.prefix}_{network}"

    def volume_name(self, volume: str) -> str:
        return f"{self.prefix}_{volume}"

    def base_labels(self) -> dict[str, str]:
        return {
            "live.deployment": self.deployment,
            "live.order": str(self.order_id),
            "live.instance": self.instance,
            "live.product": self.product,
            "live.revision": self.revision,
        }

