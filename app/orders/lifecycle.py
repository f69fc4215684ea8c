"""The order lifecycle as data: statuses, operation kinds and states, and what each operation does to a status.

Every status, kind, state and call result the bridge stores or answers is a member of one of the enums
below. They are ``enum.StrEnum`` (Python 3.11): a member *is* its text (``str(OrderStatus.ACTIVE) ==
"active"``, also in f-strings, JSON and SQL parameters), so the database holds and the API answers the
plain words. Values read back from the database are plain ``str``: compare them with ``==`` or ``in``
(never ``is``), or convert them first (``OrderStatus(order.status)``).

:data:`TRANSITIONS` says, per operation kind, from which order statuses it may be requested and which
status follows its success or failure; the order service (:mod:`app.orders.service`) refuses requests by
it and the operation runner (:mod:`app.orders.operations`) sets statuses by it. docs/OPERATIONS.md ("Order
life") shows the same table; a test keeps both in step.

:data:`HANDLERS` is the handler registry: the one function that carries out each kind, registered with
:func:`handles` where it is written (the methods of :class:`app.orders.operations.OperationRunner`, which
binds them to itself). This module only holds the registry; it knows nothing of what handlers use.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class OrderStatus(enum.StrEnum):
    """Where an order is in its life (``Order.status``)."""

    PENDING = "pending"  # recorded with its create, which has not succeeded yet
    ACTIVE = "active"  # its stack was deployed and runs
    SUSPENDED = "suspended"  # its containers are stopped, its volumes kept
    FAILED = "failed"  # its create failed, or its stack could not start again after a failed terminate
    TERMINATED = "terminated"  # volumes archived, stack removed: final

    @property
    def final(self) -> bool:
        """No operation may follow: only a repeated terminate, which has nothing to do."""
        return self is OrderStatus.TERMINATED


#: The status of a new order, recorded together with its ``create`` operation.
INITIAL_STATUS = OrderStatus.PENDING


class OperationKind(enum.StrEnum):
    """What an operation does (``Operation.kind``); :class:`app.orders.operations.OperationRunner` has one
    handler per kind."""

    CREATE = "create"
    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    CHANGE_PLAN = "change_plan"
    TERMINATE = "terminate"
    REDEPLOY = "redeploy"
    RESTART = "restart"
    UPGRADE = "upgrade"
    BACKUP = "backup"  # an on-demand or scheduled backup (app/backups/service.py); the status stays as it is
    RESTORE = "restore"  # replace the order's data with a backup's, after a safety backup
    MOVE = "move"  # Docker Swarm: move the order to another node (backup, restore there, switch)
    CHANGE_PASSWORD = "change_password"  # apply the customer's new password (product.yml credential) to the stack


class OperationState(enum.StrEnum):
    """How far an operation got (``Operation.state``): pending -> running -> succeeded | failed, and
    running -> pending again when a transient error is retried or a dead worker's operation recovered."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: States an operation ends in; it never leaves them.
FINISHED_STATES = (OperationState.SUCCEEDED, OperationState.FAILED)
#: States of an operation still to run or running: the order is busy.
UNFINISHED_STATES = tuple(state for state in OperationState if state not in FINISHED_STATES)


class CallResult(enum.StrEnum):
    """The ``result`` of a lifecycle call's answer (docs/API.md, "Lifecycle answers").

    Bridges before issue 10 answered ``accepted`` where this one says ``queued``.
    """

    QUEUED = "queued"  # 202: recorded, not started yet (the operation is pending)
    RUNNING = "running"  # 202: started, not finished when the call answered
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNCHANGED = "unchanged"  # nothing to do
    PREVIEW = "preview"  # only upgrade and change-plan calls of the developer API: a dry run
    REFUSED = "refused"  # only product upgrades: this order's data would be left behind

    @classmethod
    def of(cls, state: str) -> CallResult:
        """The result that tells an operation's ``state``: ``pending`` is ``queued``, the others keep their name."""
        return cls.QUEUED if state == OperationState.PENDING else cls(OperationState(state).value)


#: The results of the lifecycle calls that record an operation (``preview`` and ``refused`` are not among them).
LIFECYCLE_RESULTS = (CallResult.QUEUED, CallResult.RUNNING, CallResult.SUCCEEDED, CallResult.FAILED,
                     CallResult.UNCHANGED)


#: The statuses an order may still change from.
NOT_FINAL = frozenset(status for status in OrderStatus if not status.final)


@dataclass(frozen=True)
class Transition:
    """What one operation kind does to an order's status.

    - ``allowed_from``: the statuses it may be requested from. From a final status every kind is refused,
      except the one whose ``done_when`` it is (terminate of a terminated order: nothing to do). From
      another status it is refused with ``order <instance> is <status>`` and the status's hint in ``hints``.
    - ``done_when``: with the order in this status and no operation of it unfinished, a request has nothing
      to do (suspend of a suspended order).
    - ``succeeds_to``: the status once it succeeded; statuses in ``kept_while`` stay as they are (the change
      is recorded and applies when the order is resumed).
    - ``fails_to``: the status once it failed for good; ``None`` keeps the status.
    - ``restored_from``: statuses whose stack a failure for good starts again (their status stays); when it
      cannot start, the order becomes ``failed``.
    """

    kind: OperationKind
    allowed_from: frozenset[OrderStatus]
    succeeds_to: OrderStatus
    done_when: OrderStatus | None = None
    kept_while: frozenset[OrderStatus] = frozenset()
    fails_to: OrderStatus | None = None
    restored_from: frozenset[OrderStatus] = frozenset()
    hints: Mapping[OrderStatus, str] = field(default_factory=lambda: MappingProxyType({}))

    def refusal(self, status: str, instance: str) -> str | None:
        """Why the kind may not be requested for the order ``instance`` in ``status``; None when it may."""
        if status in self.allowed_from:
            return None
        hint = self.hints.get(status)
        return f"order {instance} is {status}" + (f"; {hint}" if hint else "")

    def status_after_success(self, status: str) -> OrderStatus:
        """The order's status once the operation succeeded on an order in ``status``."""
        return OrderStatus(status) if status in self.kept_while else self.succeeds_to


_SUSPENDED = frozenset({OrderStatus.SUSPENDED})
#: The statuses an order has data to back up in: everything but a create not finished yet and the final status.
_BACKED_UP = frozenset({OrderStatus.ACTIVE, OrderStatus.SUSPENDED, OrderStatus.FAILED})

#: One :class:`Transition` per operation kind (docs/OPERATIONS.md, "Order life").
TRANSITIONS: Mapping[OperationKind, Transition] = MappingProxyType({rule.kind: rule for rule in (
    # A new order starts pending with its create; a create repeated from failed provisions again.
    Transition(OperationKind.CREATE, frozenset({OrderStatus.FAILED}), OrderStatus.ACTIVE,
               fails_to=OrderStatus.FAILED),
    Transition(OperationKind.SUSPEND, NOT_FINAL, OrderStatus.SUSPENDED, done_when=OrderStatus.SUSPENDED),
    Transition(OperationKind.UNSUSPEND, NOT_FINAL, OrderStatus.ACTIVE, done_when=OrderStatus.ACTIVE),
    Transition(OperationKind.CHANGE_PLAN, NOT_FINAL, OrderStatus.ACTIVE, kept_while=_SUSPENDED),
    Transition(OperationKind.TERMINATE, NOT_FINAL, OrderStatus.TERMINATED, done_when=OrderStatus.TERMINATED,
               restored_from=frozenset({OrderStatus.ACTIVE})),
    Transition(OperationKind.REDEPLOY, NOT_FINAL, OrderStatus.ACTIVE, kept_while=_SUSPENDED),
    Transition(OperationKind.RESTART, NOT_FINAL - _SUSPENDED, OrderStatus.ACTIVE,
               hints=MappingProxyType({OrderStatus.SUSPENDED: "unsuspend it instead of restarting"})),
    Transition(OperationKind.UPGRADE, NOT_FINAL, OrderStatus.ACTIVE, kept_while=_SUSPENDED),
    # A backup changes no status; a pending order has nothing to back up yet.
    Transition(OperationKind.BACKUP, _BACKED_UP, OrderStatus.ACTIVE, kept_while=_BACKED_UP,
               hints=MappingProxyType({OrderStatus.PENDING: "its create has not finished: nothing to back up yet"})),
    # A restore runs the order's services (restore commands, health): only an active order. A failed restore
    # brings the order back from its safety backup; when even that fails, the order is failed.
    Transition(OperationKind.RESTORE, frozenset({OrderStatus.ACTIVE}), OrderStatus.ACTIVE,
               hints=MappingProxyType({OrderStatus.SUSPENDED: "unsuspend it first",
                                       OrderStatus.PENDING: "its create has not finished",
                                       OrderStatus.FAILED: "redeploy it first"})),
    # A move (Docker Swarm) takes the order's data to another node; a suspended order moves and stays suspended.
    # A failed move leaves the order on its node as it was (the handler's rollback).
    Transition(OperationKind.MOVE, frozenset({OrderStatus.ACTIVE, OrderStatus.SUSPENDED}), OrderStatus.ACTIVE,
               kept_while=_SUSPENDED,
               hints=MappingProxyType({OrderStatus.PENDING: "its create has not finished",
                                       OrderStatus.FAILED: "redeploy it first"})),
    # The new password is applied to the running stack (a command in a service, or a recreate): only an active
    # order runs one. The value is stored with the request; a failure for good keeps it stored (a repeat applies it).
    Transition(OperationKind.CHANGE_PASSWORD, frozenset({OrderStatus.ACTIVE}), OrderStatus.ACTIVE,
               hints=MappingProxyType({OrderStatus.SUSPENDED: "unsuspend it first, then change the password",
                                       OrderStatus.PENDING: "its create has not finished",
                                       OrderStatus.FAILED: "redeploy it first"})),
)})


def transition(kind: str) -> Transition:
    """The :class:`Transition` of ``kind`` (a member or its text). Raises ValueError for an unknown kind."""
    return TRANSITIONS[OperationKind(kind)]


#: The handler registry: operation kind -> its one handler, ``handler(runner, operation, order, progress)``.
HANDLERS: dict[OperationKind, Callable[..., None]] = {}


def handles(kind: OperationKind) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: register the decorated function as the handler of ``kind``.

    Raises ValueError when ``kind`` has a handler already: each kind has exactly one.
    """
    def register(function: Callable[..., None]) -> Callable[..., None]:
        if kind in HANDLERS:
            raise ValueError(f"operation kind {kind} has a handler already: {HANDLERS[kind].__qualname__}")
        HANDLERS[kind] = function
        return function

    return register


def public_params(params: dict | None) -> dict:
    """An operation's params without the worker's bookkeeping (keys starting with "_", e.g. the id of a backup
    it took, or a restore's previous secrets): what the request said, what views show, and what a repeated
    request is compared with."""
    return {key: value for key, value in (params or {}).items() if not key.startswith("_")}
