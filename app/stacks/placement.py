"""Where a new order runs in a swarm: the placement policy (docs/SCALING.md, "Placement").

Swarm volumes are node-local, so every service and volume of an order is placed on one node, chosen once at
create and recorded on the order (``Order.node``); it changes only when an operator moves the order
(``live orders move``). The policy:

1. **Eligible** nodes are ready and active (``docker node update --availability drain|pause`` takes a node out
   of placement), have an engine the bridge can reach (the ``live.engine`` label, or the manager itself), and,
   when ``LIVE_SWARM_POOL`` is set, carry the node label ``live.pool=<pool>``.
2. Among them, the node with the **most unreserved memory** (node memory minus the memory reservations of the
   tasks that should run there) wins; ties go to the node with the fewest reserved bytes, then by hostname, so
   the choice is deterministic.
3. The order's own need is the sum of its services' memory reservations (``mem_reservation``, or
   ``mem_limit`` when a service reserves nothing): the winner must have at least that much unreserved, else
   :class:`~app.errors.NoCapacity` names the figures.

Pure functions over :class:`~app.stacks.engine.NodeState`: unit-tested without a swarm.
"""
from __future__ import annotations

from app.compose.model import StackSpec
from app.errors import NoCapacity
from app.stacks.engine import NodeState
from app.stacks.project import NODE_POOL_LABEL

#: The node label that puts a node in a placement pool (``LIVE_SWARM_POOL``).
POOL_LABEL = NODE_POOL_LABEL

MIB = 1024 * 1024


def order_reservation(stack: StackSpec) -> int:
    """The memory (bytes) an order needs: per service its ``mem_reservation``, else its ``mem_limit``, else 0."""
    return sum(service.mem_reservation or service.mem_limit or 0 for service in stack.services.values())


def eligible_nodes(nodes: list[NodeState], pool: str = "") -> list[NodeState]:
    """The nodes that may take a new order (rule 1 of the module docstring)."""
    return [node for node in nodes
            if node.ready and node.active and node.engine is not None
            and (not pool or node.labels.get(POOL_LABEL) == pool)]


def choose_node(nodes: list[NodeState], need_bytes: int, pool: str = "") -> NodeState:
    """The node a new order needing ``need_bytes`` of memory is placed on (the module docstring's policy).

    Raises :class:`~app.errors.NoCapacity` when no node is eligible, or when the best one has less than
    ``need_bytes`` unreserved; the message names the pool, the nodes and the figures in MiB.
    """
    candidates = eligible_nodes(nodes, pool)
    if not candidates:
        where = f"in pool {pool!r} (node label {POOL_LABEL})" if pool else "in the swarm"
        listed = ", ".join(f"{n.hostname} ({why_not(n, pool)})" for n in nodes) or "none"
        raise NoCapacity(f"no ready, active node reachable by the bridge {where}; nodes: {listed}")
    best = sorted(candidates, key=lambda n: (-n.free_bytes, n.reserved_bytes, n.hostname))[0]
    if best.free_bytes < need_bytes:
        raise NoCapacity(
            f"no node has {need_bytes // MIB} MiB unreserved for the order; the most is {best.free_bytes // MIB} MiB "
            f"on {best.hostname} ({best.memory_bytes // MIB} MiB, {best.reserved_bytes // MIB} MiB reserved)")
    return best


def check_target(node: NodeState, need_bytes: int) -> None:
    """Refuse ``node`` as the node an operator moves an order needing ``need_bytes`` to: it must be eligible but for
    the pool (an explicit choice overrides ``LIVE_SWARM_POOL``) and have ``need_bytes`` unreserved.

    Raises :class:`~app.errors.NoCapacity` naming the node and why, with the figures in MiB.
    """
    if not eligible_nodes([node]):
        raise NoCapacity(f"node {node.hostname} cannot take orders: {why_not(node)}")
    if node.free_bytes < need_bytes:
        raise NoCapacity(f"node {node.hostname} has {node.free_bytes // MIB} MiB unreserved ({node.memory_bytes // MIB} "
                         f"MiB, {node.reserved_bytes // MIB} MiB reserved); the order reserves {need_bytes // MIB} MiB")


def why_not(node: NodeState, pool: str = "") -> str:
    """Why ``node`` is not eligible (rule 1): ``not ready``, ``not active``, ``no live.engine label``, the pool
    label it has; ``eligible`` when it is."""
    if not node.ready:
        return "not ready"
    if not node.active:
        return "not active"
    if node.engine is None:
        return "no live.engine label"
    if pool and node.labels.get(POOL_LABEL) != pool:
        return f"{POOL_LABEL}={node.labels.get(POOL_LABEL) or 'unset'}"
    return "eligible"
