"""The customer's own password (issue 16, ChangePassword): product.yml's ``credential`` checks, the create taking
WHMCS's password, the ``change_password`` operation (idempotent, a worker killed at each step) and the value
masked in answers, events, operations and logs; on the in-memory engine (``fake_live``)."""
from __future__ import annotations

import json

import pytest

from app.catalog.product import load_product
from app.errors import Conflict, InvalidRequest
from app.models import Event, Operation, Order
from app.orders.drift import MASK
from app.orders.service import CustomerInfo
from tests.conftest import TEST_IMAGE, write_product
from tests.fakes import Killed
from tests.unit.test_operations_fake import InlineExecutor, again, last_operation, operations, run

PASSWORD = "Create-Pass-1234"
NEW = "New-Secret-5678!"

MANIFEST = """name: Keyed
variables:
  APP_PASSWORD: {generate: password, length: 20}
plans: {basic: {}}
credential:
  variable: APP_PASSWORD
  apply:
APPLY
"""
COMPOSE = f"""services:
  app:
    image: {TEST_IMAGE}
    init: true
    environment: {{APP_PASSWORD: "${{APP_PASSWORD}}"}}
    command: ["sleep", "3600"]
  other:
    image: {TEST_IMAGE}
    init: true
    command: ["sleep", "3600"]
    volumes: ["data:/data"]
volumes:
  data: {{}}
"""
RECREATE = "    recreate: [app]"
COMMAND = "    command: {service: app, run: 'printf %s \"$APP_PASSWORD\" > /tmp/applied'}"


def manifest(apply: str) -> str:
    return MANIFEST.replace("APPLY", apply)


# -- product.yml ----------------------------------------------------------------------------------------------
def test_a_credential_is_read_with_its_rules():
    product = load_product("keyed", manifest(COMMAND), COMPOSE)
    assert product.errors == []
    credential = product.credential
    assert (credential.variable, credential.service, credential.run[:2]) == ("APP_PASSWORD", "app", ("sh", "-c"))
    assert credential.problem("Abcdefgh!#") is None
    assert "8 to 128 characters" in credential.problem("short")
    assert "spaces" in credential.problem("with a space in it")
    assert load_product("keyed", manifest(RECREATE), COMPOSE).credential.recreate == ("app",)


@pytest.mark.parametrize("change, expected", [
    (("variable: APP_PASSWORD", "variable: NOPE"),
     "product keyed: product.yml: credential.variable: NOPE is not a generated variable of product.yml"),
    (("recreate: [app]", "recreate: [other]"),
     "product keyed: product.yml: credential.apply.recreate: service other does not use ${APP_PASSWORD}"),
    (("recreate: [app]", "recreate: [ghost]"),
     "product keyed: product.yml: credential.apply.recreate: no such service 'ghost' (services: app, other)"),
    (("recreate: [app]", "command: {service: ghost, run: ['true']}"),
     "product keyed: product.yml: credential.apply.command.service: no such service 'ghost'"),
    (("  apply:", "  min_length: 30\n  apply:"),
     "product keyed: product.yml: credential.variable: APP_PASSWORD is generated with 20 characters, outside"),
    (("  apply:", "  symbols: 'é'\n  apply:"),
     "product keyed: product.yml: credential.symbols: only printable ASCII symbols"),
    (("  apply:", "  apply: {}\n  x:"), "product keyed: product.yml: "),
    (("recreate: [app]", "recreate: [app]\n    command: {service: app, run: ['true']}"),
     "product keyed: product.yml: credential.apply: give exactly one of command (a command run in a service) and "
     "recreate (the services to recreate); it has both"),
    (("    recreate: [app]", "    {}"), "product keyed: product.yml: credential.apply: give exactly one of command"),
])
def test_a_wrong_credential_is_named_by_file_key_and_service(change, expected):
    text = manifest(RECREATE).replace(*change)
    errors = load_product("keyed", text, COMPOSE).errors
    assert any(error.startswith(expected) for error in errors), errors


# -- the application ---------------------------------------------------------------------------------------------
@pytest.fixture
def keyed(fake_live):
    """fake_live with products keyed (recreate) and keyedcmd (command), and an exec handler for the command that
    records what it applied."""
    repo = fake_live.settings.config_repo
    write_product(repo, "keyed", manifest(RECREATE), COMPOSE)
    write_product(repo, "keyedcmd", manifest(COMMAND), COMPOSE)
    fake_live.catalog.sync()
    return fake_live


def applied(engine) -> list[str]:
    """The values the command was given, in order (from the exec's environment)."""
    return [env.get("APP_PASSWORD") for _, _, env in engine.exec_environments]


def command_handler(engine):
    def handler(command, stdin, container):
        return 0, b"", b""
    engine.exec_handlers["app"] = handler


def create(live, product: str, password: str | None = PASSWORD, service_id: int = 1, run_it: bool = True):
    outcome = live.orders.create(service_id=service_id, customer=CustomerInfo(email="ops@example.org"),
                                 product=product, plan="basic", username=f"{product}{service_id}", password=password)
    if run_it:
        run(live)
    return Order.get_by_id(outcome.order.id)


def app_env(engine, live, order) -> dict[str, str]:
    container = engine.container(f"{live.settings.deployment}-{order.instance}_app")
    return dict(item.split("=", 1) for item in container.payload["Env"])


def everything_said(order: Order) -> str:
    """Every event and operation row of the order, as text."""
    rows = [(e.kind, e.message, e.data) for e in Event.select().where(Event.order == order)]
    rows += [(o.kind, o.params, o.steps, o.error, o.error_detail)
             for o in Operation.select().where(Operation.order == order)]
    return json.dumps(rows, default=str)


def test_create_takes_whmcs_password_as_the_credential(keyed, fake_engine):
    order = create(keyed, "keyed")
    assert order.status == "active" and order.secrets["APP_PASSWORD"] == PASSWORD
    assert app_env(fake_engine, keyed, order)["APP_PASSWORD"] == PASSWORD
    generated = create(keyed, "keyed", password=None, service_id=2)
    assert len(generated.secrets["APP_PASSWORD"]) == 20
    assert PASSWORD not in everything_said(order)


def test_a_product_without_a_credential_ignores_the_create_password(keyed):
    outcome = keyed.orders.create(service_id=3, customer=CustomerInfo(email="ops@example.org"),
                                  product="busybox-demo", plan="small", username="plain", password=PASSWORD)
    assert PASSWORD not in outcome.order.secrets.values()


def test_a_bad_create_password_is_refused_naming_the_rule_not_the_value(keyed):
    with pytest.raises(InvalidRequest) as caught:
        create(keyed, "keyed", password="a b", run_it=False)
    assert "8 to 128 characters" in caught.value.message and "a b" not in caught.value.message
    assert Order.select().count() == 0


def test_a_repeated_create_keeps_the_stored_password(keyed):
    order = create(keyed, "keyed")
    outcome = keyed.orders.create(service_id=1, customer=CustomerInfo(email="ops@example.org"), product="keyed",
                                  plan="basic", username="keyed1", password="Another-Pass-99")
    assert outcome.operation is None and "the stored password is kept" in outcome.message
    assert again(order).secrets["APP_PASSWORD"] == PASSWORD


def test_change_password_recreates_the_services_that_use_it(keyed, fake_engine):
    order = create(keyed, "keyed")
    other = fake_engine.container(f"{keyed.settings.deployment}-{order.instance}_other").id
    outcome = keyed.orders.change_password(order, NEW)
    assert outcome.operation.params == {"variable": "APP_PASSWORD"}
    run(keyed)
    assert last_operation(order).state == "succeeded"
    assert app_env(fake_engine, keyed, order)["APP_PASSWORD"] == NEW
    assert fake_engine.container(f"{keyed.settings.deployment}-{order.instance}_other").id == other
    assert again(order).secrets["APP_PASSWORD"] == NEW and again(order).secrets["APP_PASSWORD.previous"] == PASSWORD
    said = everything_said(order)
    assert NEW not in said and PASSWORD not in said and "order.password_changed" in said


def test_change_password_runs_the_command_with_the_value_in_its_environment_only(keyed, fake_engine):
    command_handler(fake_engine)
    order = create(keyed, "keyedcmd")
    keyed.orders.change_password(order, NEW)
    run(keyed)
    assert last_operation(order).state == "succeeded"
    assert applied(fake_engine) == [NEW]
    name, command, _ = fake_engine.exec_environments[0]
    assert name.endswith("_app") and NEW not in " ".join(command)
    assert NEW not in everything_said(order)


def test_a_repeat_is_the_same_operation_then_unchanged(keyed, fake_engine):
    command_handler(fake_engine)
    order = create(keyed, "keyedcmd")
    first = keyed.orders.change_password(order, NEW)
    assert keyed.orders.change_password(order, NEW).operation.id == first.operation.id
    run(keyed)
    repeat = keyed.orders.change_password(order, NEW)
    assert repeat.operation is None and repeat.message == "the password is already set"
    assert keyed.orders.change_password(order, PASSWORD).operation is not None  # back to the create's value
    run(keyed)
    assert applied(fake_engine) == [NEW, PASSWORD]
    assert operations(order)[-2:] == [("change_password", "succeeded"), ("change_password", "succeeded")]


def test_a_failed_change_is_queued_again_by_a_repeat_and_its_error_is_masked(keyed, fake_engine):
    def leaky(command, stdin, container):
        value = fake_engine.exec_environments[-1][2]["APP_PASSWORD"]
        return 1, b"", f"cannot set {value}\n".encode()
    fake_engine.exec_handlers["app"] = leaky
    order = create(keyed, "keyedcmd")
    keyed.orders.change_password(order, NEW)
    run(keyed)
    failed = last_operation(order)
    assert failed.state == "failed" and again(order).status == "active"
    assert NEW not in (failed.error or "") + (failed.error_detail or "") and MASK in failed.error_detail
    assert NEW not in everything_said(order)
    command_handler(fake_engine)
    retry = keyed.orders.change_password(order, NEW)
    assert retry.operation is not None and retry.operation.id != failed.id
    run(keyed)
    assert last_operation(order).state == "succeeded"


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_worker_killed_around_the_command_applies_the_value_on_recovery(keyed, fake_engine, when):
    calls = []

    def handler(command, stdin, container):
        calls.append(command)
        if when == "after" and len(calls) == 1:
            raise Killed()  # the command ran, the worker died before recording it
        return 0, b"", b""
    fake_engine.exec_handlers["app"] = handler
    order = create(keyed, "keyedcmd")
    if when == "before":
        fake_engine.failures[("exec_input", f"{keyed.settings.deployment}-{order.instance}_app")] = Killed()
    keyed.orders.change_password(order, NEW)
    worker = keyed.worker()
    worker._pool = InlineExecutor()
    with pytest.raises(Killed):
        worker.dispatch()
    assert last_operation(order).state == "running" and again(order).secrets["APP_PASSWORD"] == NEW
    keyed.worker().recover()
    run(keyed)
    assert last_operation(order).state == "succeeded"
    assert applied(fake_engine)[-1] == NEW


def test_a_worker_killed_during_the_recreate_converges_on_recovery(keyed, fake_engine):
    order = create(keyed, "keyed")
    fake_engine.failures[("start_container", "app")] = Killed()
    keyed.orders.change_password(order, NEW)
    worker = keyed.worker()
    worker._pool = InlineExecutor()
    with pytest.raises(Killed):
        worker.dispatch()
    keyed.worker().recover()
    run(keyed)
    assert last_operation(order).state == "succeeded"
    assert app_env(fake_engine, keyed, order)["APP_PASSWORD"] == NEW


def test_refusals_record_nothing(keyed):
    plain = keyed.orders.create(service_id=5, customer=CustomerInfo(email="ops@example.org"), product="busybox-demo",
                                plan="small", username="plain").order
    run(keyed)
    with pytest.raises(Conflict, match="product busybox-demo declares no customer password"):
        keyed.orders.change_password(again(plain), NEW)
    order = create(keyed, "keyed")
    with pytest.raises(InvalidRequest, match="8 to 128 characters"):
        keyed.orders.change_password(order, "short")
    keyed.orders.suspend(order)
    run(keyed)
    with pytest.raises(Conflict, match="is suspended; unsuspend it first"):
        keyed.orders.change_password(again(order), NEW)
    assert again(order).secrets["APP_PASSWORD"] == PASSWORD
    assert Operation.select().where(Operation.kind == "change_password").count() == 0


def test_answers_and_service_logs_never_show_the_password(keyed, fake_engine):
    order = create(keyed, "keyed")
    keyed.orders.change_password(order, NEW)
    run(keyed)
    view = keyed.queries.service_info(order.whmcs_service_id)
    assert not any(key.startswith("APP_PASSWORD") for key in view["secrets"])
    assert NEW not in json.dumps(view, default=str) and PASSWORD not in json.dumps(view, default=str)
    fake_engine.logs["app"] = f"password was {PASSWORD}\npassword is {NEW}\n"
    text = "".join(keyed.logs.open(again(order), service="app", tail=10, since=None))
    assert NEW not in text and PASSWORD not in text and text.count(MASK) == 2


def test_a_restore_keeps_whmcs_password_and_applies_it_again_to_the_restored_data(keyed, fake_engine):
    """A terminated order's final backup restored into a new order of the customer brings its generated secrets,
    not its customer password (WHMCS's for the new service); the command applies it to the restored data; the
    restore's bookkeeping never holds it."""
    command_handler(fake_engine)
    old = create(keyed, "keyedcmd", password="Old-Service-Pass1")
    keyed.orders.terminate(old)
    run(keyed)
    [final] = keyed.backups.list(old)
    new = create(keyed, "keyedcmd", service_id=2)
    keyed.orders.restore(new, final.backup_id, product=final.product, source_order_id=final.order_id)
    run(keyed)
    restore = last_operation(new)
    assert restore.state == "succeeded", restore.error_detail
    assert again(new).secrets["APP_PASSWORD"] == PASSWORD and "APP_PASSWORD.previous" not in again(new).secrets
    assert applied(fake_engine)[-1] == PASSWORD
    assert PASSWORD not in everything_said(new)


def test_every_value_a_change_replaced_stays_masked_in_logs_and_hidden_in_answers(keyed, fake_engine):
    """A container that is not recreated (apply.command) keeps the lines it wrote with the create's value: after
    two changes they are still masked, and no earlier value is answered."""
    command_handler(fake_engine)
    order = create(keyed, "keyedcmd")
    for value in (NEW, "Third-Value-9012"):
        keyed.orders.change_password(again(order), value)
        run(keyed)
    fake_engine.logs["app"] = f"started with {PASSWORD}\nchanged to {NEW}\nnow Third-Value-9012\n"
    text = "".join(keyed.logs.open(again(order), service="app", tail=10, since=None))
    assert text.count(MASK) == 3 and PASSWORD not in text and NEW not in text, text
    view = json.dumps(keyed.queries.service_info(order.whmcs_service_id), default=str)
    assert not any(value in view for value in (PASSWORD, NEW, "Third-Value-9012"))


def test_the_values_kept_for_masking_are_distinct_newest_first_and_bounded():
    credential = load_product("keyed", manifest(COMMAND), COMPOSE).credential
    secrets = {"OTHER": "kept-as-is"}
    for n in range(15):
        secrets = credential.with_value(secrets, f"value-{n % 13:04d}")
    previous = [secrets[key] for key in credential.previous_keys if key in secrets]
    assert secrets["APP_PASSWORD"] == "value-0001" and secrets["OTHER"] == "kept-as-is"
    assert previous == ["value-0000", "value-0012", "value-0011", "value-0010", "value-0009", "value-0008",
                        "value-0007", "value-0006", "value-0005", "value-0004"]
    assert credential.with_value(secrets, "value-0001") == secrets


def test_replaced_values_stay_hidden_once_a_revision_no_longer_declares_the_credential(keyed, fake_engine):
    order = create(keyed, "keyed")
    keyed.orders.change_password(order, NEW)
    run(keyed)
    write_product(keyed.settings.config_repo, "keyed", manifest(RECREATE).split("credential:")[0], COMPOSE)
    keyed.catalog.sync()
    keyed.orders.upgrade(again(order))
    run(keyed)
    assert keyed.catalog.definition(again(order).revision).credential is None
    view = keyed.queries.service_info(order.whmcs_service_id)
    assert PASSWORD not in json.dumps(view, default=str) and "APP_PASSWORD.previous" not in view["secrets"]


def test_the_whmcs_routes_never_echo_nor_log_the_password(keyed, fake_engine, monkeypatch, caplog):
    import logging

    import app as app_package
    from app.apikeys import create_key

    monkeypatch.setattr(app_package, "bootstrap", lambda settings: keyed)
    client = app_package.create_app(keyed.settings).test_client()
    headers = {"Authorization": f"Bearer {create_key('pw-whmcs', 'whmcs')[1]}"}
    caplog.set_level(logging.DEBUG)
    order = create(keyed, "keyed")
    route = f"/whmcs/v1/services/{order.whmcs_service_id}/change-password"
    bad = ["Sh0rt!", "x" * 129 + "-Secret", "Ünïcode-Secret-1", "with space Secret"]
    tricky = "Quote\"Back\\slash{x}%s$(id)"
    answers = [client.post(route, json={"password": value}, headers=headers) for value in bad]
    answers.append(client.post(route, json={"password": ["List-Secret-1234"]}, headers=headers))
    answers.append(client.post(route, json={"password": NEW, "unknown": NEW}, headers=headers))
    accepted = client.post(route, json={"password": tricky}, headers=headers)
    run(keyed)
    created = client.post("/whmcs/v1/services/77/create", headers=headers, json={
        "client": {"id": 1, "email": "ops@example.org", "firstname": "", "lastname": "", "companyname": ""},
        "product": "keyed", "plan": "basic", "username": "keyed77", "password": "Sh0rt!"})
    assert [a.status_code for a in answers] == [422] * 6 and accepted.status_code == 202
    assert last_operation(order).state == "succeeded" and app_env(fake_engine, keyed, order)["APP_PASSWORD"] == tricky
    assert created.status_code == 422 and "8 to 128 characters" in created.json["error"]["message"]
    said = "\n".join(a.get_data(as_text=True) for a in [*answers, accepted, created]) + caplog.text
    assert f'"path": "{route}"' in caplog.text  # the access log was read
    for value in [*bad, tricky, "List-Secret-1234", NEW, PASSWORD]:
        assert value not in said and json.dumps(value)[1:-1] not in said, value


def test_a_failure_of_any_operation_has_the_password_masked_everywhere_it_is_recorded(keyed, fake_engine):
    """An engine's message or a command's output may repeat what the stack was given (an invalid environment
    entry, a dump's connection string): the failure's texts of every operation kind are masked."""
    from app.errors import EngineOperationError

    fake_engine.failures[("create_container", "app")] = EngineOperationError(
        f"create container: invalid environment entry APP_PASSWORD={PASSWORD}")
    order = create(keyed, "keyed")
    failed = last_operation(order)
    assert (failed.kind, failed.state, again(order).status) == ("create", "failed", "failed")
    assert MASK in failed.error_detail and "APP_PASSWORD=" in failed.error_detail
    assert PASSWORD not in everything_said(order) and PASSWORD not in (again(order).last_error_detail or "")


def test_a_restore_whose_rollback_fails_too_has_the_password_masked_in_its_event(keyed, fake_engine):
    from app.errors import EngineOperationError

    def failing(command, stdin, container):
        value = fake_engine.exec_environments[-1][2]["APP_PASSWORD"]
        fake_engine.failures[("start_container", "app")] = EngineOperationError(f"start: bad env APP_PASSWORD={value}")
        return 1, b"", f"cannot set {value}\n".encode()
    order = create(keyed, "keyedcmd")
    keyed.orders.back_up(order)
    run(keyed)
    [backup] = keyed.backups.list(order)
    fake_engine.exec_handlers["app"] = failing
    keyed.orders.restore(again(order), backup.backup_id, product=backup.product, source_order_id=order.id)
    run(keyed)
    assert (last_operation(order).state, again(order).status) == ("failed", "failed")
    assert Event.select().where(Event.kind == "order.failed").exists()
    assert PASSWORD not in everything_said(order) and MASK in everything_said(order)


def test_a_failed_backup_records_its_detail_with_the_password_masked(keyed, fake_engine):
    from app.errors import EngineOperationError
    from app.models import Backup

    order = create(keyed, "keyed")
    fake_engine.failures[("export_volume", f"{keyed.settings.deployment}-{order.instance}_data")] = \
        EngineOperationError(f"export: the helper printed APP_PASSWORD={PASSWORD}")
    keyed.orders.back_up(order)
    run(keyed)
    [row] = Backup.select().where(Backup.order == order.id)
    assert row.state == "failed" and MASK in row.error_detail and PASSWORD not in row.error_detail


def test_a_failed_restore_drill_records_its_problem_with_the_password_masked(keyed, fake_engine):
    from app.errors import EngineOperationError
    from app.models import Backup
    from tests.unit.test_restore_drills import drills

    order = create(keyed, "keyed")
    keyed.orders.back_up(order)
    run(keyed)
    fake_engine.failures[("start_container", "app")] = EngineOperationError(f"start: bad env APP_PASSWORD={PASSWORD}")
    problem = drills(keyed).drill(again(order))
    assert MASK in problem and PASSWORD not in problem
    assert PASSWORD not in (Backup.get(Backup.order == order.id).verify_error or "")
    assert PASSWORD not in everything_said(order)


@pytest.mark.parametrize("chunks", [1, 7, 4096])
def test_a_cut_output_tail_never_starts_with_the_end_of_a_secret(chunks):
    """The engine keeps the last 4 KiB of a command's output for its error: the cut line is dropped (up to 128
    bytes, the longest secret), so masking, which needs whole values, leaves nothing of one."""
    from app.stacks.docker_engine import _Tail

    # The last 4096 bytes start 6 characters before the end of the secret, then its line goes on, or not.
    for after in [b"\n" + b"done\n" * 818, b"z" * 4091]:
        output = b"x" * 5000 + f"value {NEW}".encode() + after
        tail = _Tail()
        for start in range(0, len(output), chunks):
            tail.add(output[start:start + chunks])
        text = tail.text()
        assert output[-4096:].decode() == NEW[-(4096 - len(after)):] + after.decode()  # a cut in the secret
        assert text.endswith(after.decode()[200:]) and not any(NEW[i:] in text for i in range(1, len(NEW) - 3))
    short = _Tail()
    short.add(b"first line\nsecond\n")
    assert short.text() == "first line\nsecond\n"
