"""The convergence plan: what to do with each service to reach the desired state.

Pure functions over hashes and observed states, so they are unit-tested
without an engine. The rules follow docker-compose's: no container ->
create; config hash differs -> recreate; stopped -> start; else nothing.
One exception: a one-shot job (a service another waits for with
``service_completed_successfully``, :func:`app.compose.model.one_shot_services`)
whose container exited with code 0 and whose config hash is unchanged is left
as it is: it did its work, and what waits for it finds its condition met. So
a redeploy (a drift repair, a restart, an unsuspend) does not run migrations
or seeds again; a changed definition recreates and runs the job, and a job
that failed (exit code not 0) is started again.

A recreate makes the replacement first, under a temporary name and with the
:data:`~app.stacks.project.REPLACES_LABEL` label, then swaps it in (``Deployer.deploy``). A crash
midway leaves both containers: while the replaced container still exists, the
replacement is a leftover and is removed; once it is gone, the replacement is
the service's container.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Collection, Mapping

from app.stacks.engine import ContainerState
from app.stacks.project import CONFIG_HASH_LABEL, REPLACES_LABEL


class Action(str, enum.Enum):
    CREATE = "create"
    RECREATE = "recreate"
    START = "start"
    UNPAUSE = "unpause"
    NOOP = "noop"


@dataclass(frozen=True)
class ConvergencePlan:
    actions: dict[str, Action]
    # Containers of the order that belong to no desired service (or are duplicates).
    orphans: list[ContainerState]
    # Replacements an interrupted recreate left while the container they replace still exists.
    leftovers: list[ContainerState] = field(default_factory=list)

    def changed(self) -> list[str]:
        return sorted(name for name, action in self.actions.items() if action in (Action.CREATE, Action.RECREATE))

    @property
    def is_noop(self) -> bool:
        return not self.orphans and not self.leftovers and all(a is Action.NOOP for a in self.actions.values())


def plan_convergence(desired_hashes: Mapping[str, str], observed: list[ContainerState],
                     one_shot: Collection[str] = ()) -> ConvergencePlan:
    """The plan from ``desired_hashes`` (service -> its config hash, :data:`~app.stacks.project.CONFIG_HASH_LABEL`),
    the order's containers ``observed`` and the stack's ``one_shot`` services (a finished one is left as it is)."""
    present = {container.id for container in observed}
    leftovers = sorted((c for c in observed if c.labels.get(REPLACES_LABEL) in present), key=lambda c: c.name)
    left = {container.id for container in leftovers}
    by_service: dict[str, ContainerState] = {}
    orphans: list[ContainerState] = []
    for container in sorted((c for c in observed if c.id not in left), key=lambda c: c.name):
        service = container.service
        if service not in desired_hashes or service in by_service:
            orphans.append(container)
        else:
            by_service[service] = container

    actions = {}
    for service, wanted_hash in desired_hashes.items():
        current = by_service.get(service)
        if current is None:
            actions[service] = Action.CREATE
        elif current.labels.get(CONFIG_HASH_LABEL) != wanted_hash or current.state in ("dead", "removing"):
            actions[service] = Action.RECREATE
        elif current.state == "paused":
            actions[service] = Action.UNPAUSE  # the engine refuses to start a paused container
        elif service in one_shot and current.state == "exited" and current.exit_code == 0:
            actions[service] = Action.NOOP  # a job that finished: its dependants' condition is met
        elif not current.running:
            actions[service] = Action.START
        else:
            actions[service] = Action.NOOP
    return ConvergencePlan(actions=actions, orphans=orphans, leftovers=leftovers)
