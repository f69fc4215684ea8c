"""Which customer data a change of stack definition would leave behind (issue 9, item 5).

A change (upgrade to another revision, another plan or product) is compared as two rendered
stacks. Data stays with a service when the same named volume is mounted at the same path
afterwards; the engine never deletes a volume on its own, so anything else means a service would
start on an empty (or other) volume while the customer's data sits unused:

- a volume renamed or removed (``pgdata`` becomes ``db-data``);
- a service renamed or removed, when no service mounts its volume at that path afterwards;
- a volume mounted at another path (the service no longer finds its data).

Pure functions over :class:`~app.compose.model.StackSpec`; no engine call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.compose.model import StackSpec


@dataclass(frozen=True)
class DataRiskReport:
    """What a change does to the order's data; ``risks`` is empty when nothing is left behind."""

    #: One sentence per problem, naming service, volume and path.
    risks: list[str] = field(default_factory=list)
    #: Volumes mounted before and by no service after: kept on the engine, listed on the order.
    left_behind: list[str] = field(default_factory=list)
    #: Volumes mounted after that no service mounted before: new, and empty unless they exist already.
    new_volumes: list[str] = field(default_factory=list)

    @property
    def detaches_data(self) -> bool:
        return bool(self.risks)

    def as_dict(self) -> dict:
        return {"risks": list(self.risks), "left_behind": list(self.left_behind), "new_volumes": list(self.new_volumes)}

    def summary(self) -> str:
        """The risks in one line, for an error message."""
        return "; ".join(self.risks)


def _mounts(stack: StackSpec) -> dict[tuple[str, str], str]:
    """``{(service, path in the container): volume}`` of every named-volume mount."""
    return {(name, mount.target.rstrip("/") or "/"): mount.volume
            for name, service in stack.services.items() for mount in service.volumes}


def data_risks(before: StackSpec, after: StackSpec) -> DataRiskReport:
    """Compare the stack an order runs with the one a change would give it.

    Returns a :class:`DataRiskReport`; its ``risks`` list is empty when every volume that held
    data stays mounted at the same path by a service of the same name, or by another service at
    the same path (a renamed service keeps its data when it keeps the mount).
    """
    old, new = _mounts(before), _mounts(after)
    used_before, used_after = set(old.values()), set(new.values())
    new_volumes = sorted(used_after - used_before)
    left_behind = sorted(used_before - used_after)
    risks: list[str] = []
    for (service, path), volume in sorted(old.items()):
        now = new.get((service, path))
        if now == volume:
            continue
        if now is not None:
            state = "new, empty" if now in new_volumes else "another volume of the order"
            risks.append(f"service {service}: {path} moves from volume {volume} to volume {now} ({state})")
            continue
        if service in after.services:
            elsewhere = sorted(p for (s, p), v in new.items() if s == service and v == volume)
            if elsewhere:
                risks.append(f"service {service}: volume {volume} moves from {path} to {', '.join(elsewhere)}: "
                             f"the service no longer finds its data at {path}")
            else:
                risks.append(f"service {service} no longer mounts volume {volume} at {path}")
            continue
        keepers = sorted(s for (s, p), v in new.items() if p == path and v == volume)
        if not keepers:
            risks.append(f"service {service} is removed or renamed, and no service mounts its volume {volume} "
                         f"at {path} any more")
    for volume in left_behind:
        risks.append(f"volume {volume} is left behind: kept, listed on the order and archived at terminate, "
                     "but no service uses it")
    return DataRiskReport(risks=risks, left_behind=left_behind, new_volumes=new_volumes)
