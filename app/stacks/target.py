"""One order's desired stack (:class:`DeploymentTarget`) and the one way to build it from a product.

:func:`build_target` renders a product for a plan, re-checks the policy on
the rendered document and parses it into a stack. The worker builds every
order's target with it (``OperationRunner.target``) and the catalog builds a
sample target of every plan with it when it validates a product, so the two
never disagree about what a product means.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from app.catalog.policy import check_policy
from app.errors import ProductError
from app.naming import object_prefix
from app.stacks.spec import StackSpec, parse_stack

if TYPE_CHECKING:  # app.catalog.product imports this module
    from app.catalog.product import Endpoint, ProductDefinition


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


def build_target(definition: ProductDefinition, plan: str, builtins: Mapping[str, str], secrets: Mapping[str, str],
                 *, revision: str, pinned_ports: Mapping[str, int] | None = None, tls: bool = True,
                 deployment: str = "live") -> DeploymentTarget:
    """The stack ``definition`` renders for ``plan``, as the deployer takes it. No engine is called.

    ``builtins`` are the ``LIVE_*`` values of the order (:data:`app.catalog.product.BUILTIN_VARIABLES`); the
    target's order id, instance, hostname and product are read from ``LIVE_ORDER_ID``, ``LIVE_INSTANCE``,
    ``LIVE_HOSTNAME`` and ``LIVE_PRODUCT``, so the names of the objects always match what the compose file
    saw. ``secrets`` are the order's generated values, ``revision`` the label of the product revision,
    ``pinned_ports`` the host port recorded per ``"service:port"`` endpoint.

    Raises :class:`~app.errors.InterpolationError` when the plan does not render,
    :class:`~app.errors.ProductError` when the rendered document breaks the policy (checked again here on
    the real values: the catalog only saw sample ones) and :class:`~app.errors.StackSpecError` when it
    cannot be turned into a stack. The definition's own validity is the caller's to check.
    """
    rendered = definition.render(plan, builtins, secrets)
    violations = check_policy(definition.slug, rendered)
    if violations:
        raise ProductError(definition.slug, violations)
    return DeploymentTarget(
        order_id=int(builtins["LIVE_ORDER_ID"]), instance=builtins["LIVE_INSTANCE"], product=builtins["LIVE_PRODUCT"],
        revision=revision, hostname=builtins["LIVE_HOSTNAME"], stack=parse_stack(rendered),
        endpoints=list(definition.endpoints), pinned_ports=dict(pinned_ports or {}), tls=tls, deployment=deployment,
    )
