"""Drift: an active order's containers that are not what its last successful deploy made, found and repaired.

**What should run** (``order_drift.expected``, :class:`app.models.OrderDrift`) is recorded by
:func:`record_expected`, the one function the operation handlers call: at the end of every successful deploy
(create, unsuspend, redeploy, restart, change_plan, upgrade, restore, move, and the roll-backs that deploy
again) with ``{service: {"config_hash", "one_shot"}}`` (:func:`expected_services`), and at suspend and terminate with ``{}``
(nothing should run). A service is *one-shot* when another service of the stack waits for it with
``condition: service_completed_successfully`` (:func:`app.compose.model.one_shot_services`), and only then: it
exiting with code 0 is what it is for. A restart policy says nothing of it: a server restarted ``on-failure`` that
exits 0 when stopped (PostgreSQL does) is no finished job.

**What runs** is the engine mirror's (``observed_container``, written by the worker's mirror,
``app/stacks/mirror.py``); the checker never asks the engine, except for the log lines of a failing order.

**The checker** (:class:`DriftChecker`, run by the worker every LIVE_DRIFT_SECONDS) decides only while the
mirror is fresh (connected, beat recently): a stale mirror means no decision at all, never a repair made on
old rows. It looks at ``active`` orders with no unfinished operation (an order being repaired is not
re-detected; suspended, terminated and failed orders never, nor one whose latest operation other than a backup
failed: see :func:`_last_change_failed`; but when that operation is the checker's own repair, the order is
*failing*, below) whose expectation was recorded more than
:data:`SETTLE_SECONDS` ago (the mirror catches up with the deploy that recorded it). Drift of a service
(:func:`problems_of`): ``missing`` (no container; not for a one-shot service: the deploy that recorded it waited
for it to exit 0, so its container removed since, ``docker rm`` or ``docker container prune``, is a job done),
``exited``/``dead`` (a one-shot service exited 0 is fine),
``paused``, ``created`` (never started), ``unhealthy`` for longer than LIVE_DRIFT_UNHEALTHY_SECONDS,
``config_changed`` (its ``live.config-hash`` is not the deploy's), ``crash_loop`` (its container died
LIVE_DRIFT_CRASH_DEATHS times since the deploy, none more than LIVE_DRIFT_WINDOW_SECONDS after the one
before: the mirror counts deaths). A container the restart policy is bringing back (``restarting``) is no
drift by itself: its deaths are counted. A state counts once it lasted :data:`CONFIRM_SECONDS` (a container
removed by force is ``exited`` for an instant first); a missing container counts at once.

**What it does** (LIVE_DRIFT): ``report``: events only. ``repair`` (default): queue a ``redeploy`` through the
order service, requested by ``drift``, refused inside the order's lock when another operation is unfinished or
the order is no longer active. Bounded: at most LIVE_DRIFT_MAX_REPAIRS redeploys per order within
LIVE_DRIFT_WINDOW_SECONDS; drift again after that many, a crash loop, or a repair (the checker's redeploy) that
failed makes the order **failing**: reported
once (``drift_failing``, with the last LIVE_DRIFT_LOG_LINES log lines of each drifted container, the order's
secrets masked) and never redeployed by the checker until a deploy not requested by ``drift`` succeeds
on the order (its recorded expectation is newer than ``failing_since``; a backup does not count). Events (``actor`` ``drift``): ``drift_detected`` (the problems, and what is done),
``drift_repaired`` (what should run runs again), ``drift_failing``.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import peewee

from app.compose.model import one_shot_services
from app.errors import LiveError
from app.models import ObservedContainer, Operation, Order, OrderDrift, record_event, utcnow
from app.orders.lifecycle import UNFINISHED_STATES, OperationKind, OperationState, OrderStatus
from app.presenters import PRIVATE_EVENT_DATA
from app.stacks import mirror

if TYPE_CHECKING:
    from app.compose.model import StackSpec
    from app.orders.service import OrderService
    from app.stacks.engine import Engine

log = logging.getLogger(__name__)

#: Who the checker's redeploys and events are by (``Operation.requested_by``, ``Event.actor``).
DRIFT_ACTOR = "drift"
#: Seconds after an expectation is recorded before the checker judges the order (the mirror catches up first).
SETTLE_SECONDS = 5.0
#: Seconds a container's state must have lasted before it counts as drift (``docker rm -f`` kills, then removes: the
#: container is ``exited`` for an instant, and a redeploy then would race the removal). A missing one counts at once.
CONFIRM_SECONDS = 2.0
#: Secret values shorter than this are not masked in log lines (they would mask ordinary text).
MIN_MASKED_LENGTH = 4
MASK = "********"


class DriftState(enum.StrEnum):
    """``OrderDrift.state``."""

    OK = "ok"  # what should run runs (or nothing was judged yet)
    DRIFTED = "drifted"  # drift seen and reported (LIVE_DRIFT=report), or a repair was not possible
    REPAIRING = "repairing"  # a redeploy was queued for it
    FAILING = "failing"  # crash loop, or drift again after the repairs allowed: no more repairs


class DriftMode(enum.StrEnum):
    REPAIR = "repair"
    REPORT = "report"


# -- what should run --------------------------------------------------------------------------------
def expected_services(stack: StackSpec, config_hashes: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{service: {"config_hash": str | None, "one_shot": bool}}`` of ``stack`` as deployed with
    ``config_hashes`` (service -> the ``live.config-hash`` its container was made with); one-shot:
    :func:`app.compose.model.one_shot_services`."""
    completed = one_shot_services(stack)
    return {name: {"config_hash": config_hashes.get(name), "one_shot": name in completed}
            for name in sorted(stack.services)}


def record_expected(order: Order, services: dict[str, dict[str, Any]]) -> None:
    """Record what should run on ``order`` now (:func:`expected_services`; ``{}``: nothing, as after a suspend).

    The mirror's death counters of the order's containers are the new crash baseline. Nothing should run
    means nothing can drift: the drift state is cleared too (a suspend is an operation that succeeded).
    """
    now = utcnow()
    baseline = {row.container_id: row.deaths for row in
                ObservedContainer.select(ObservedContainer.container_id, ObservedContainer.deaths)
                .where(ObservedContainer.order_id == order.id)}
    values: dict[str, Any] = {"expected": services, "expected_at": now, "baseline": baseline}
    if not services:
        values.update(state=DriftState.OK, problems=[], detected_at=None, repairs=[], failing_since=None,
                      failing_reason=None)
    updated = OrderDrift.update(**values).where(OrderDrift.order == order.id).execute()
    if not updated:
        try:
            with OrderDrift._meta.database.atomic():
                OrderDrift.create(order=order.id, **values)
        except peewee.IntegrityError:  # made meanwhile (never by two deploys of one order: they are serial)
            OrderDrift.update(**values).where(OrderDrift.order == order.id).execute()


# -- the rules --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftRules:
    """The checker's settings (app/config.py ``drift_*``): seconds, counts."""

    mode: DriftMode = DriftMode.REPAIR
    max_repairs: int = 3
    window_seconds: float = 600.0
    crash_deaths: int = 3
    unhealthy_seconds: float = 60.0
    log_lines: int = 20
    settle_seconds: float = SETTLE_SECONDS
    confirm_seconds: float = CONFIRM_SECONDS


def problems_of(expected: Mapping[str, Mapping[str, Any]], containers: Mapping[str, ObservedContainer],
                now: dt.datetime, rules: DriftRules) -> list[dict[str, str]]:
    """The drift of one order: ``[{"service", "kind", "detail"}]`` sorted by service, for what should run
    (``expected``) against its observed ``containers`` (by service); see the module docstring for the kinds."""
    problems = []
    for service, wanted in sorted(expected.items()):
        row = containers.get(service)
        kind = detail = None
        if row is None:
            if not wanted.get("one_shot"):  # a job's container removed after it exited 0 (recorded after it did)
                kind, detail = "missing", "no container"
        elif (now - row.changed_at).total_seconds() < rules.confirm_seconds:
            pass  # just changed: judged once it lasted
        elif wanted.get("config_hash") and row.config_hash and row.config_hash != wanted["config_hash"]:
            kind, detail = "config_changed", "made from another definition than the last deploy's"
        elif row.state in ("exited", "dead"):
            if not (wanted.get("one_shot") and row.state == "exited" and row.exit_code == 0):
                kind = row.state
                # Never the engine's own text (``row.error``, a swarm task's error): problems and the reason built
                # from them are shown to customers; that text stays in the mirror's row and the worker's log.
                detail = f"exit code {row.exit_code}" if row.exit_code is not None else row.state
        elif row.state in ("paused", "created"):
            kind, detail = row.state, "paused" if row.state == "paused" else "not started"
        elif row.health == "unhealthy" and (now - row.changed_at).total_seconds() >= rules.unhealthy_seconds:
            kind, detail = "unhealthy", f"unhealthy since {row.changed_at.isoformat(timespec='seconds')}Z"
        if kind:
            problems.append({"service": service, "kind": kind, "detail": detail})
    return problems


def crash_loops(expected: Mapping[str, Any], containers: Mapping[str, ObservedContainer], baseline: dict[str, int],
                now: dt.datetime, rules: DriftRules) -> list[dict[str, str]]:
    """The services of ``expected`` whose container died ``rules.crash_deaths`` times since ``baseline``
    (container id -> deaths when counting began; updated in place: a container whose last death is older than the
    window starts counting again from its current deaths). Problems of kind ``crash_loop``."""
    loops = []
    for service in sorted(expected):
        row = containers.get(service)
        if row is None:
            continue
        if row.last_died_at is None or (now - row.last_died_at).total_seconds() > rules.window_seconds:
            baseline[row.container_id] = row.deaths
            continue
        deaths = row.deaths - baseline.setdefault(row.container_id, 0)
        if deaths >= rules.crash_deaths:
            loops.append({"service": service, "kind": "crash_loop",
                          "detail": f"died {deaths} times, last at {row.last_died_at.isoformat(timespec='seconds')}Z"})
    return loops


def mask_secrets(text: str, secrets: Mapping[str, Any] | None) -> str:
    """``text`` with every value of ``secrets`` (the order's generated passwords) of at least
    :data:`MIN_MASKED_LENGTH` characters replaced by :data:`MASK`, longest first."""
    values = sorted({str(v) for v in (secrets or {}).values() if v is not None and len(str(v)) >= MIN_MASKED_LENGTH},
                    key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    return text


# -- the checker ------------------------------------------------------------------------------------
@dataclass
class DriftPass:
    """What one :meth:`DriftChecker.check` did: ``fresh`` (False: the mirror was stale, nothing decided),
    ``checked`` orders, and the order ids ``detected``, ``repaired`` (queued a redeploy), ``cleared``
    (drift gone), ``failing``."""

    fresh: bool
    checked: int = 0
    detected: list[int] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    failing: list[int] = field(default_factory=list)


class DriftChecker:
    """Compares the mirror's rows with what should run and acts by ``rules`` (see the module docstring).

    ``orders`` queues the repairs (:meth:`app.orders.service.OrderService.redeploy` with ``only_if_idle``);
    ``engine`` is asked only for the log lines of a failing order (:meth:`~app.stacks.engine.Engine.container_logs`).
    The mirror's readers decide what is seen (:func:`app.stacks.mirror.freshness` with ``stale_seconds``,
    LIVE_MIRROR_STALE_SECONDS, and :func:`app.stacks.mirror.observed`).
    """

    def __init__(self, deployment: str, orders: OrderService, engine: Engine, rules: DriftRules = DriftRules(), *,
                 stale_seconds: float = mirror.DEFAULT_STALE_SECONDS, clock: Callable[[], dt.datetime] = utcnow):
        self.deployment = deployment
        self.stale_seconds = stale_seconds
        self.orders = orders
        self.engine = engine
        self.rules = rules
        self.clock = clock

    def check(self) -> DriftPass:
        """One pass over every order that may be judged now; needs a database connection."""
        if not mirror.freshness(self.deployment, stale_seconds=self.stale_seconds).fresh:
            log.debug("drift: the engine mirror of %s is not fresh: no decision", self.deployment)
            return DriftPass(fresh=False)
        now = self.clock()
        settled = now - dt.timedelta(seconds=self.rules.settle_seconds)
        busy = Operation.select(Operation.order).where(Operation.state.in_(UNFINISHED_STATES))
        rows = list(OrderDrift.select(OrderDrift, Order).join(Order)
                    .where((Order.status == OrderStatus.ACTIVE) & Order.id.not_in(busy)
                           & (OrderDrift.expected_at <= settled)))
        unsettled = _last_change_failed([row.order_id for row in rows])
        # The checker's own repair failed: the order is failing (else it would read "repairing" for ever).
        repair_failed = [row for row in rows if row.order_id in unsettled and row.state == DriftState.REPAIRING
                         and unsettled[row.order_id].requested_by == DRIFT_ACTOR]
        rows = [row for row in rows if row.order_id not in unsettled]
        result = DriftPass(fresh=True, checked=len(rows) + len(repair_failed))
        containers = mirror.observed([row.order_id for row in rows + repair_failed])
        for row in repair_failed + rows:
            try:
                if row.order_id in unsettled:
                    self._repair_failed(row, unsettled[row.order_id], containers.get(row.order_id, {}), now, result)
                else:
                    self._judge(row, containers.get(row.order_id, {}), now, result)
            except peewee.PeeweeException:
                raise
            except LiveError as exc:  # the order service refused, the engine would not give logs: next pass
                log.warning("drift of order %s: %s", row.order.instance, exc)
        return result

    def _repair_failed(self, row: OrderDrift, operation: Operation, containers: dict[str, ObservedContainer],
                       now: dt.datetime, result: DriftPass) -> None:
        """The redeploy the checker queued for ``row``'s order (``operation``) failed: the order is failing, reported
        once as any failing order (``drift_failing``, the last log lines of its drifted containers), until a deploy
        not requested by ``drift`` succeeds. The reason names the operation, never its error (the engine's text:
        the operation's own ``error`` and the failures view say what went wrong, to staff)."""
        order = row.order
        problems = row.problems or []
        why = f"the drift repair (redeploy operation {operation.id}) failed"
        logs = self._logs(order, problems, containers)
        record_event("drift_failing", f"order {order.instance} is failing: {why}", order=order, actor=DRIFT_ACTOR,
                     problems=problems, reason=why, operation_id=operation.id,
                     **({PRIVATE_EVENT_DATA: logs} if logs else {}))
        log.error("order %s is failing: %s", order.instance, why)
        result.failing.append(order.id)
        OrderDrift.update(state=DriftState.FAILING, failing_since=now, failing_reason=why).where(
            (OrderDrift.id == row.id) & (OrderDrift.expected_at == row.expected_at)).execute()

    def _judge(self, row: OrderDrift, containers: dict[str, ObservedContainer], now: dt.datetime,
               result: DriftPass) -> None:
        order = row.order
        baseline = dict(row.baseline or {})
        problems = problems_of(row.expected or {}, containers, now, self.rules)
        loops = crash_loops(row.expected or {}, containers, baseline, now, self.rules)
        problems += [p for p in loops if p["service"] not in {q["service"] for q in problems}]
        problems.sort(key=lambda p: (p["service"], p["kind"]))
        changes: dict[str, Any] = {}
        if baseline != (row.baseline or {}):
            changes["baseline"] = baseline
        window_start = now - dt.timedelta(seconds=self.rules.window_seconds)
        repairs = [at for at in (row.repairs or []) if _parse(at) >= window_start]
        if repairs != (row.repairs or []):
            changes["repairs"] = repairs
        state = DriftState(row.state)
        if state == DriftState.FAILING and row.failing_since is not None and row.expected_at > row.failing_since:
            log.info("order %s: a deploy succeeded since it was failing: drift is judged again", order.instance)
            state, repairs = DriftState.OK, []
            changes.update(state=state, failing_since=None, failing_reason=None, repairs=[], problems=[],
                           detected_at=None)
        if state == DriftState.FAILING:
            pass  # reported once; nothing more until a deploy succeeds on the order
        elif not problems:
            if state != DriftState.OK:
                record_event("drift_repaired", f"order {order.instance}: what should run runs again", order=order,
                             actor=DRIFT_ACTOR, problems=row.problems or [], detected_at=_iso(row.detected_at),
                             repairs=len(repairs))
                changes.update(state=DriftState.OK, problems=[], detected_at=None)
                result.cleared.append(order.id)
        elif state == DriftState.DRIFTED and problems == (row.problems or []) \
                and self.rules.mode == DriftMode.REPORT:
            pass  # already reported
        else:
            changes.update(self._act(order, row, state, problems, loops, repairs, containers, now, result))
        if changes:
            # Only if no deploy recorded a new expectation meanwhile (a suspend or redeploy that ended during this
            # pass reset the row: this pass's verdict was about the containers before it).
            OrderDrift.update(**changes).where((OrderDrift.id == row.id)
                                               & (OrderDrift.expected_at == row.expected_at)).execute()

    def _act(self, order: Order, row: OrderDrift, state: DriftState, problems: list[dict], loops: list[dict],
             repairs: list[str], containers: dict[str, ObservedContainer], now: dt.datetime,
             result: DriftPass) -> dict[str, Any]:
        """Drift seen on an order that is not failing: report it, repair it or call it failing; the row's changes."""
        summary = "; ".join(f"{p['service']} {p['kind']} ({p['detail']})" for p in problems)
        detected_at = row.detected_at if state != DriftState.OK else now
        changes: dict[str, Any] = {"problems": problems, "detected_at": detected_at}
        if loops:
            why = "crash loop: " + "; ".join(f"{p['service']} {p['detail']}" for p in loops)
        elif self.rules.mode == DriftMode.REPAIR and len(repairs) >= self.rules.max_repairs:
            why = (f"drift again after {len(repairs)} repair(s) within {self.rules.window_seconds:.0f}s: {summary}"
                   if repairs else f"drift and no repair allowed (LIVE_DRIFT_MAX_REPAIRS=0): {summary}")
        else:
            why = None
        if why is not None:
            record_event("drift_detected", f"order {order.instance} drifted: {summary}", order=order,
                         actor=DRIFT_ACTOR, problems=problems, action="failing")
            logs = self._logs(order, problems, containers)
            record_event("drift_failing", f"order {order.instance} is failing: {why}", order=order, actor=DRIFT_ACTOR,
                         problems=problems, reason=why, **({PRIVATE_EVENT_DATA: logs} if logs else {}))
            log.error("order %s is failing: %s", order.instance, why)
            result.detected.append(order.id)
            result.failing.append(order.id)
            changes.update(state=DriftState.FAILING, failing_since=now, failing_reason=why)
            return changes
        if self.rules.mode == DriftMode.REPORT:
            record_event("drift_detected", f"order {order.instance} drifted: {summary}", order=order,
                         actor=DRIFT_ACTOR, problems=problems, action="report")
            result.detected.append(order.id)
            changes["state"] = DriftState.DRIFTED
            return changes
        outcome = self.orders.redeploy(order, requested_by=DRIFT_ACTOR, only_if_idle=True)
        operation = outcome.operation if outcome.operation is not None \
            and outcome.operation.requested_by == DRIFT_ACTOR else None  # never count another's as a repair
        record_event("drift_detected", f"order {order.instance} drifted: {summary}", order=order, actor=DRIFT_ACTOR,
                     problems=problems, action="redeploy" if operation else "none", outcome=outcome.message,
                     operation_id=operation.id if operation else None)
        result.detected.append(order.id)
        if operation is None:  # something else is under way (or the order left active) since the pass began
            changes["state"] = DriftState.DRIFTED
            return changes
        log.warning("order %s drifted (%s): redeploy queued (operation %s)", order.instance, summary, operation.id)
        result.repaired.append(order.id)
        changes.update(state=DriftState.REPAIRING, repairs=repairs + [now.isoformat(timespec="seconds")])
        return changes

    def _logs(self, order: Order, problems: list[dict], containers: dict[str, ObservedContainer]) -> str:
        """The last log lines of each drifted service's container, secrets masked; a container that cannot be read
        says why (its logs are not needed to call the order failing)."""
        if self.rules.log_lines <= 0:
            return ""
        parts = []
        for service in sorted({p["service"] for p in problems}):
            row = containers.get(service)
            if row is None:
                continue
            try:
                text = self.engine.container_logs(row.container_id, self.rules.log_lines)
            except LiveError as exc:
                text = f"(logs not read: {exc})"
            parts.append(f"--- {service} ({row.name}), last {self.rules.log_lines} lines ---\n{text.rstrip()}")
        return mask_secrets("\n".join(parts), order.secrets)


def _last_change_failed(order_ids: list[int]) -> dict[int, Operation]:
    """The orders of ``order_ids`` whose latest operation that changes the stack (any kind but ``backup``) failed,
    each with that operation (``id``, ``kind``, ``requested_by``): what runs of them is what the failure left (a
    suspend that stopped half the services, a change that could not finish), so it is no drift to repair: the
    failure is reported as such (failures view, the order's ``last_error``) and an operator or billing decides. One
    query whatever the number of orders."""
    if not order_ids:
        return {}
    latest = (Operation.select(peewee.fn.MAX(Operation.id))
              .where(Operation.order.in_(order_ids) & (Operation.kind != OperationKind.BACKUP))
              .group_by(Operation.order))
    return {operation.order_id: operation for operation in
            Operation.select(Operation.id, Operation.order, Operation.kind, Operation.requested_by)
            .where(Operation.id.in_(latest) & (Operation.state == OperationState.FAILED))}


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"

