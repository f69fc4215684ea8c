"""The lifecycle model (app/orders/lifecycle.py): its enums, its transition table, the docs that show them, and
the runner's handler registry."""
from __future__ import annotations

import json
import re

import pytest
from flask import Flask

from app.backups.file_store import FileBackupStore
from app.backups.service import BackupService
from app.config import PROJECT_ROOT
from app.errors import LiveError
from app.models import Operation, Order
from app.orders.lifecycle import (
    FINISHED_STATES,
    HANDLERS,
    INITIAL_STATUS,
    LIFECYCLE_RESULTS,
    NOT_FINAL,
    TRANSITIONS,
    UNFINISHED_STATES,
    CallResult,
    OperationKind,
    OperationState,
    OrderStatus,
    handles,
    transition,
)
from app.orders.operations import OperationRunner
from app.web.schemas import OperationOut, choices

OPERATIONS_DOC = PROJECT_ROOT / "docs" / "OPERATIONS.md"
API_DOC = PROJECT_ROOT / "docs" / "API.md"

P, A, S, F, T = (OrderStatus.PENDING, OrderStatus.ACTIVE, OrderStatus.SUSPENDED, OrderStatus.FAILED,
                 OrderStatus.TERMINATED)


# -- the enums ----------------------------------------------------------------
def test_the_words_are_the_ones_stored_and_answered_in_their_order():
    # The order is the OpenAPI document's (its enum lists) and must not change.
    assert list(OrderStatus) == ["pending", "active", "suspended", "failed", "terminated"]
    assert list(OperationState) == ["pending", "running", "succeeded", "failed"]
    assert list(OperationKind) == ["create", "suspend", "unsuspend", "change_plan", "terminate", "redeploy",
                                   "restart", "upgrade", "backup", "restore", "move", "change_password"]
    assert list(LIFECYCLE_RESULTS) == ["queued", "running", "succeeded", "failed", "unchanged"]
    assert list(CallResult) == [*LIFECYCLE_RESULTS, "preview", "refused"]
    assert INITIAL_STATUS == "pending"


@pytest.mark.parametrize("member", [*OrderStatus, *OperationKind, *OperationState, *CallResult])
def test_a_member_is_its_text_everywhere_text_is_made(member):
    value = member.value
    assert type(value) is str
    assert str(member) == f"{member}" == "%s" % member == format(member) == value
    assert json.dumps({"x": member}) == json.dumps({"x": value})
    assert json.dumps([member], indent=1) == json.dumps([value], indent=1)  # the pure-Python encoder too
    assert member == value and hash(member) == hash(value)  # plain text read from the database matches


def test_flask_and_marshmallow_answer_the_plain_words():
    app = Flask(__name__)
    body = {"status": OrderStatus.ACTIVE, "result": CallResult.QUEUED}
    assert app.json.dumps(body) == app.json.dumps({"status": "active", "result": "queued"})
    dumped = OperationOut(only=("kind", "state")).dump({"kind": OperationKind.CHANGE_PLAN,
                                                        "state": OperationState.RUNNING})
    assert json.dumps(dumped, sort_keys=True) == '{"kind": "change_plan", "state": "running"}'


def test_the_schemas_choices_are_plain_text():
    assert choices(OrderStatus) == ["pending", "active", "suspended", "failed", "terminated"]
    assert all(type(choice) is str for choice in choices(CallResult))


def test_finished_and_unfinished_states_split_every_state():
    assert set(FINISHED_STATES) | set(UNFINISHED_STATES) == set(OperationState)
    assert not set(FINISHED_STATES) & set(UNFINISHED_STATES)
    assert UNFINISHED_STATES == ("pending", "running") and FINISHED_STATES == ("succeeded", "failed")


@pytest.mark.parametrize(("state", "result"), [("pending", "queued"), ("running", "running"),
                                               ("succeeded", "succeeded"), ("failed", "failed")])
def test_an_answer_tells_the_operation_state(state, result):
    assert CallResult.of(state) == result and CallResult.of(OperationState(state)) == result


def test_the_model_fields_default_to_the_initial_words():
    assert Order.status.default == "pending" and Operation.state.default == "pending"


# -- the transition table -----------------------------------------------------
def test_every_kind_has_one_transition():
    assert list(TRANSITIONS) == list(OperationKind)
    assert all(rule.kind == kind for kind, rule in TRANSITIONS.items())
    assert transition("change_plan") is TRANSITIONS[OperationKind.CHANGE_PLAN]
    with pytest.raises(ValueError):
        transition("reboot")


def test_only_terminated_is_final_and_nothing_is_allowed_from_it():
    assert [status for status in OrderStatus if status.final] == [T]
    assert NOT_FINAL == {P, A, S, F}
    for rule in TRANSITIONS.values():
        assert T not in rule.allowed_from
        assert rule.refusal(T, "acme") == "order acme is terminated"


# What docs/OPERATIONS.md and the code before the table said, written out by hand (issue 11).
ALLOWED = {
    "create": {F},  # a new order starts pending with its create; a repeat from failed retries
    "suspend": {P, A, S, F},
    "unsuspend": {P, A, S, F},
    "change_plan": {P, A, S, F},
    "terminate": {P, A, S, F},  # "Terminate works from any state"; terminated: nothing to do
    "redeploy": {P, A, S, F},
    "restart": {P, A, F},  # "refused on a suspended order: unsuspend it"
    "upgrade": {P, A, S, F},
    "backup": {A, S, F},  # issue 13: a pending order has no data yet
    "restore": {A},  # issue 13: restore commands and health need the order running
    "move": {A, S},  # issue 14: a node is drained of its active and suspended orders
    "change_password": {A},  # issue 16: applied to the running stack; unsuspend first
}
DONE_WHEN = {"suspend": S, "unsuspend": A, "terminate": T}
SUCCEEDS_TO = {"create": A, "suspend": S, "unsuspend": A, "change_plan": A, "terminate": T, "redeploy": A,
               "restart": A, "upgrade": A, "backup": A, "restore": A, "move": A, "change_password": A}
KEPT_WHILE = {"change_plan": {S}, "redeploy": {S}, "upgrade": {S}, "backup": {A, S, F}, "move": {S}}  # "on a suspended order ... applies at unsuspend"


@pytest.mark.parametrize("kind", list(OperationKind))
def test_the_table_says_what_the_docs_say(kind):
    rule = TRANSITIONS[kind]
    assert rule.allowed_from == ALLOWED[kind]
    assert rule.done_when == DONE_WHEN.get(kind)
    assert rule.succeeds_to == SUCCEEDS_TO[kind]
    assert rule.kept_while == KEPT_WHILE.get(kind, set())
    assert rule.fails_to == (F if kind == "create" else None)  # "leaves the order failed"
    assert rule.restored_from == ({A} if kind == "terminate" else set())  # "it stays active" (or becomes failed)


def test_refusals_name_the_status_and_what_to_do_instead():
    restart = TRANSITIONS[OperationKind.RESTART]
    assert restart.refusal(S, "acme") == "order acme is suspended; unsuspend it instead of restarting"
    assert restart.refusal(A, "acme") is None
    assert TRANSITIONS[OperationKind.SUSPEND].refusal(P, "acme") is None


@pytest.mark.parametrize(("kind", "before", "after"), [
    ("redeploy", S, S), ("redeploy", F, A), ("change_plan", S, S), ("upgrade", S, S), ("upgrade", P, A),
    ("restart", S, A), ("create", F, A), ("suspend", A, S), ("terminate", S, T), ("unsuspend", "suspended", A),
])
def test_status_after_success(kind, before, after):
    status = TRANSITIONS[OperationKind(kind)].status_after_success(before)
    assert status == after and isinstance(status, OrderStatus)


# -- the docs -----------------------------------------------------------------
def _words(statuses) -> str:
    return ", ".join(f"`{status}`" for status in OrderStatus if status in statuses)


def transition_table() -> str:
    """docs/OPERATIONS.md's table of TRANSITIONS, as it must read."""
    rows = ["| Operation | Requested from | Nothing to do when already | After success | After a failure for good |",
            "|---|---|---|---|---|"]
    for rule in TRANSITIONS.values():
        allowed = _words(rule.allowed_from)
        if rule.kind == OperationKind.CREATE:
            allowed = f"a new order (`{INITIAL_STATUS}`); {allowed} (a retry)"
        if rule.kept_while >= rule.allowed_from:
            success = "unchanged"
        else:
            success = f"`{rule.succeeds_to}`" + "".join(f"; `{status}` stays `{status}`" for status in OrderStatus
                                                        if status in rule.kept_while)
        failure = f"`{rule.fails_to}`" if rule.fails_to else "unchanged"
        if rule.restored_from:
            failure += f"; {_words(rule.restored_from)} starts again, else `{OrderStatus.FAILED}`"
        rows.append(f"| `{rule.kind}` | {allowed} | {f'`{rule.done_when}`' if rule.done_when else '–'} | "
                    f"{success} | {failure} |")
    return "\n".join(rows) + "\n"


def test_the_operations_doc_shows_the_transition_table():
    table = transition_table()
    assert table in OPERATIONS_DOC.read_text(encoding="utf-8"), (
        f"docs/OPERATIONS.md (\"Order life\") must hold the transition table as app/orders/lifecycle.py has it:\n{table}")


def test_the_operations_doc_names_every_status_and_kind():
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    diagram = text.split("## Order life", 1)[1].split("```")[1]
    assert set(re.findall(r"[a-z]+", diagram)) >= set(OrderStatus)
    table = text.split("### What each operation does", 1)[1].split("\n\n")[1]
    documented = {kind for cell in re.findall(r"^\| ([^|]+) \|", table, re.M) for kind in re.findall(r"`([a-z_]+)`", cell)}
    assert documented == set(OperationKind)


def test_the_api_doc_lists_every_lifecycle_result():
    text = API_DOC.read_text(encoding="utf-8")
    table = text.split("| `result` | HTTP | Meaning |", 1)[1].split("\n\n")[0]
    assert re.findall(r"^\| `([a-z]+)` \| (\d+) \|", table, re.M) == [
        (result, "202" if result in (CallResult.QUEUED, CallResult.RUNNING) else "200") for result in LIFECYCLE_RESULTS]


# -- the handler registry -------------------------------------------------------
@pytest.fixture
def runner(tmp_path):
    return OperationRunner(catalog=None, deployer=None, backups=BackupService(FileBackupStore(tmp_path), deployer=None))


def test_every_kind_has_exactly_one_handler_of_its_own(runner):
    assert list(runner.handlers) == list(OperationKind)
    functions = [handler.__func__ for handler in runner.handlers.values()]
    assert len(set(functions)) == len(functions)
    assert all(handler.__self__ is runner for handler in runner.handlers.values())


def test_the_registry_lives_in_the_lifecycle_module_and_refuses_a_second_handler(runner):
    assert set(HANDLERS) == set(OperationKind), "every kind registered"
    assert {kind: handler.__func__ for kind, handler in runner.handlers.items()} == HANDLERS
    with pytest.raises(ValueError, match="operation kind create has a handler already: OperationRunner._do_create"):
        handles(OperationKind.CREATE)(lambda runner, operation, order, progress: None)
    assert HANDLERS[OperationKind.CREATE].__name__ == "_do_create", "the refused one was not registered"


def test_a_kind_without_a_handler_is_a_clear_error(runner):
    with pytest.raises(LiveError, match="unknown operation kind 'reboot'") as caught:
        runner.run(Operation(kind="reboot"), progress=lambda message: None)
    assert not caught.value.transient


def test_the_handler_is_found_by_the_stored_text(runner, monkeypatch):
    calls = []
    monkeypatch.setitem(runner.handlers, OperationKind.CHANGE_PLAN, lambda op, order, progress: calls.append(op.kind))
    runner.run(Operation(kind="change_plan", order=Order(id=1)), progress=lambda message: None)
    assert calls == ["change_plan"]
