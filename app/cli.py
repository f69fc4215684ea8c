"""The operator's command line: ``flask --app wsgi live ...``.

Everything an operator needs to run orders by hand without the HTTP API.
Commands that change an order record an operation for the worker; ``--wait``
blocks until it ends.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import peewee
from flask.cli import AppGroup

from app import alerts
from app.alerts import DeliveryState
from app.catalog.product import load_product_folder
from app.catalog.source import LocalFolderSource
from app.collaborators import backups, catalog, live, logs, orders, queries, settings
from app.db import MAX_ID, upgrade
from app.apikeys import SCOPES, create_key, list_keys, revoke_key
from app.errors import DataRiskError, LiveError
from app.orders.heartbeat import describe_seconds
from app.orders.lifecycle import OperationState
from app.orders.logs import DEFAULT_TAIL, MAX_TAIL
from app.orders.service import CustomerInfo, Outcome
from app.presenters import PRIVATE_EVENT_DATA

if TYPE_CHECKING:
    from app.models import Order


class LiveGroup(AppGroup):
    """The ``live`` command group: a database that cannot be reached or is not migrated is one line, not a traceback.

    Live errors are handled by each command (``_fail``); what is left here is the database itself.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except peewee.PeeweeException as exc:  # not reachable, wrong credentials, or a table missing
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            missing = "no such table" in text or ("relation" in text and "does not exist" in text)
            hint = " (run `flask --app wsgi live db upgrade` first)" if missing else ""
            raise click.ClickException(f"the database cannot be used: {text}{hint}") from None


live_cli = LiveGroup("live", help="GeoCat Live: catalog, orders, worker and database.")


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc))


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


allow_data_risk_option = click.option(
    "--allow-data-risk", is_flag=True,
    help="Accept a change that leaves data behind (a volume renamed, removed or moved): the old volumes are kept, "
         "listed on the order and archived at terminate.")


# -- database ----------------------------------------------------------------
db_cli = AppGroup("db", help="Database schema.")
live_cli.add_command(db_cli)


@db_cli.command("upgrade")
def db_upgrade():
    """Apply pending migrations (run once per deploy, before the service)."""
    try:
        applied = upgrade(live.db)
    except LiveError as exc:
        _fail(exc)
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@db_cli.command("status")
def db_status():
    """List migrations that are not applied yet."""
    pending = queries.pending_migrations()
    click.echo(f"pending: {', '.join(pending)}" if pending else "database is up to date")
    sys.exit(1 if pending else 0)


# -- worker ------------------------------------------------------------------
@live_cli.command("worker")
def worker():
    """Run the background worker that executes operations (one per deployment)."""
    try:
        live.worker().run_forever()
    except LiveError as exc:
        _fail(exc)


# -- doctor ------------------------------------------------------------------
@live_cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json):
    """Check what a running installation needs, each with a fix; exit 0 (ok), 1 (warnings) or 2 (failures)."""
    from app.doctor import doctor_command

    sys.exit(doctor_command(live, as_json=as_json, echo=click.echo))


# -- products ----------------------------------------------------------------
products_cli = AppGroup("products", help="The product catalog.")
live_cli.add_command(products_cli)


def _sync_catalog(*, keep_going: bool):
    """Sync the catalog for a ``products`` command; the :class:`SyncReport`, or ``None`` when it failed.

    When the source (or the database) cannot be read: with ``keep_going`` one
    warning line on stderr (the command then shows what the catalog knows),
    else a one-line error (exit 1). Never a traceback: an unexpected exception
    is named in that line, and its traceback logged at DEBUG level.
    """
    try:
        return catalog.sync()
    except Exception as exc:  # noqa: BLE001 (an operator command: one line, whatever the source did)
        if isinstance(exc, (LiveError, peewee.PeeweeException)):
            reason = str(exc)
        else:
            logging.getLogger(__name__).debug("catalog sync failed", exc_info=True)
            reason = f"reading the catalog failed ({type(exc).__name__}: {exc}; LIVE_LOG_LEVEL=DEBUG shows where)"
        if not keep_going:
            raise click.ClickException(reason) from None
        click.echo(f"warning: the catalog was not synced ({reason}); showing what it knew", err=True)
        return None


@products_cli.command("sync")
def products_sync():
    """Read the config repository and record new product revisions."""
    report = _sync_catalog(keep_going=False)
    click.echo(f"source: {report.source}")
    for label, names in (("added", report.added), ("changed", report.changed), ("unchanged", report.unchanged),
                         ("removed", report.removed)):
        if names:
            click.echo(f"{label}: {', '.join(names)}")
    for slug, errors in report.invalid.items():
        click.echo(f"INVALID {slug}:")
        for error in errors:
            click.echo(f"  - {error}")


@products_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def products_list(as_json):
    """List products with their current revision and validity."""
    _sync_catalog(keep_going=True)
    rows = queries.product_summaries()
    if as_json:
        return _echo_json(rows)
    for row in rows:
        state = "ok" if row["valid"] else f"INVALID ({len(row['errors'])} error(s))"
        click.echo(f"{row['slug']:24} {row['revision'] or '-':14} {state:22} {row['name']}")


@products_cli.command("show")
@click.argument("slug")
def products_show(slug):
    """Show a product's plans, endpoints, variables and errors."""
    _sync_catalog(keep_going=True)
    try:
        product, definition = queries.product_definition(slug)
    except LiveError as exc:
        _fail(exc)
    click.echo(f"{product.slug}: {product.name}")
    if product.description:
        click.echo(f"  {product.description}")
    if definition is not None:
        click.echo(f"revision: {product.current_revision.label} (commit {product.current_revision.commit or '-'})")
        click.echo("plans:")
        for plan, values in sorted(definition.plans.items()):
            click.echo(f"  {plan}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
        click.echo("endpoints:")
        for e in definition.endpoints:
            click.echo(f"  {e.application}: service {e.service} port {e.port} path {e.path}")
        click.echo("services: " + ", ".join(sorted(definition.compose.get("services", {}))))
        if definition.generated:
            click.echo("generated per order: " + ", ".join(sorted(definition.generated)))
    for error in product.errors or []:
        click.echo(f"ERROR: {error}")


@products_cli.command("revisions")
@click.argument("slug")
def products_revisions(slug):
    """List a product's recorded revisions, newest first, with the orders on each."""
    try:
        product, revisions = queries.revision_usage(slug)
    except LiveError as exc:
        _fail(exc)
    for revision, on in revisions:
        current = "current" if revision.id == product.current_revision_id else ""
        state = "valid" if revision.valid else "INVALID"
        click.echo(f"{revision.label}  commit {(revision.commit or '-')[:12]:12} {state:8} {on:>4} order(s) "
                   f"{revision.created_at:%Y-%m-%d %H:%M} {current}")


@products_cli.command("upgrade")
@click.argument("slug")
@click.option("--revision", default=None, help="Hash or commit prefix (default: the product's current revision).")
@click.option("--dry-run", is_flag=True, help="Show what would be recreated for each order, change nothing.")
@allow_data_risk_option
def products_upgrade(slug, revision, dry_run, allow_data_risk):
    """Move every order of a product to a revision (never done by a sync on its own).

    An order whose data the revision would leave behind is refused (and the others still move),
    unless --allow-data-risk; exit status 1 when any order was refused.
    """
    upgrading = queries.product_orders(slug)  # read in full before the loop writes (see app/db.py)
    if not upgrading:
        click.echo(f"no orders of product {slug}")
        return
    refused = 0
    try:
        for order in upgrading:
            if dry_run:
                _echo_preview(orders.preview_upgrade(order, revision))
                continue
            try:
                outcome = orders.upgrade(order, revision, requested_by="cli", allow_data_risk=allow_data_risk)
            except DataRiskError as exc:
                refused += 1
                click.echo(f"order {order.id} ({order.instance}): REFUSED: {exc}")
                continue
            click.echo(f"order {order.id} ({order.instance}): {outcome.message}")
    except LiveError as exc:
        _fail(exc)
    if refused:
        sys.exit(1)


@products_cli.command("validate")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
def products_validate(folders):
    """Validate product folders (default: every product of the config repository). Exit 1 if any is invalid.

    Folders are read exactly as the catalog's local source reads them (encoding,
    size, symbolic links, folder names): what validates here syncs.
    """
    if folders:
        definitions = [load_product_folder(folder, orchestrator=settings.orchestrator) for folder in folders]
    else:
        try:
            items = LocalFolderSource(settings.config_repo).read()
        except LiveError as exc:
            _fail(exc)
        definitions = [item.load(settings.orchestrator) for item in items]
    invalid = 0
    for definition in definitions:
        if definition.valid:
            click.echo(f"ok      {definition.slug} ({len(definition.plans)} plan(s), {len(definition.compose['services'])} service(s))")
        else:
            invalid += 1
            click.echo(f"INVALID {definition.slug}")
            for error in definition.errors:
                click.echo(f"  - {error}")
    sys.exit(1 if invalid else 0)


# -- orders ------------------------------------------------------------------
orders_cli = AppGroup("orders", help="Customer orders and their projects (containers, networks, volumes). ORDER is an order id, an instance "
                      "identifier or service:<WHMCS service id>.")
live_cli.add_command(orders_cli)

wait_option = click.option("--wait", type=float, default=0, show_default=True,
                           help="Seconds to wait for the operation to finish (needs a running worker).")


#: What the operator sees of an order: the private error detail and local URLs, not the generated passwords.
OPERATOR_VIEW = {"include_private": True, "include_local_urls": True}


def _report(outcome: Outcome, wait: float) -> None:
    click.echo(f"order {outcome.order.id} ({outcome.order.instance}): {outcome.message}")
    operation = outcome.operation
    if operation is None:
        return
    click.echo(f"operation {operation.id}: {operation.kind} {operation.state}")
    if wait <= 0:
        return
    worker = queries.worker_status()
    if not worker.alive:  # nothing would change while waiting
        last = (f"last heartbeat {worker.describe_age()} ago" if worker.age_seconds is not None
                else "none has a heartbeat")
        click.echo(f"not waiting: no worker is running ({last}); the operation is recorded and runs once one does: "
                   "`flask --app wsgi live worker` (or `make run`)")
        sys.exit(3)
    operation = queries.wait_for_operation(operation, wait, poll_seconds=0.5)
    for step in operation.steps or []:
        click.echo(f"  {step['at']} {step['message']}")
    reason = operation.error_detail or operation.error  # the operator gets the private detail
    click.echo(f"operation {operation.id}: {operation.kind} {operation.state}" + (f": {reason}" if reason else ""))
    if operation.state == OperationState.FAILED:
        sys.exit(1)
    if operation.state != OperationState.SUCCEEDED:
        click.echo(f"still {operation.state} after {wait:g} s: the worker is busy; see `orders show`")
        sys.exit(3)


def _get_order(reference: str) -> Order:
    try:
        return queries.order_by_reference(reference)
    except LiveError as exc:
        _fail(exc)


@orders_cli.command("create")
@click.option("--service-id", type=int, required=True, help="The WHMCS service id (unique per order).")
@click.option("--email", required=True, help="Customer email.")
@click.option("--client-id", type=int, default=None, help="WHMCS client id of the customer.")
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--company", default="")
@click.option("--product", required=True, help="Product slug.")
@click.option("--plan", required=True)
@click.option("--username", default=None, help="Used to derive the instance identifier.")
@click.option("--domain", default=None, help="Customer domain; the hostname defaults to <instance>.<LIVE_BASE_DOMAIN>.")
@click.option("--instance", default=None, help="Explicit instance identifier.")
@wait_option
def orders_create(service_id, email, client_id, first_name, last_name, company, product, plan, username, domain,
                  instance, wait):
    """Create an order and deploy its project."""
    try:
        catalog.sync()
        outcome = orders.create(
            service_id=service_id, product=product, plan=plan, username=username, domain=domain, instance=instance,
            customer=CustomerInfo(email=email, whmcs_client_id=client_id, first_name=first_name,
                                  last_name=last_name, company=company),
            requested_by="cli",
        )
    except LiveError as exc:
        _fail(exc)
    _report(outcome, wait)


def _lifecycle_command(name: str, method: str, help_text: str):
    @orders_cli.command(name, help=help_text)
    @click.argument("order")
    @wait_option
    def command(order, wait):
        try:
            outcome = getattr(orders, method)(_get_order(order), requested_by="cli")
        except LiveError as exc:
            _fail(exc)
        _report(outcome, wait)

    return command


_lifecycle_command("suspend", "suspend", "Stop every container of the order; volumes are kept.")
_lifecycle_command("unsuspend", "unsuspend", "Start the order's containers again, data intact.")
_lifecycle_command("terminate", "terminate", "Take the order's final backup into the backup store, then remove the "
                                             "project.")
_lifecycle_command("redeploy", "redeploy", "Converge the project to its definition (recreates only what differs).")


@orders_cli.command("change-plan")
@click.argument("order")
@click.option("--plan", required=True)
@click.option("--product", default=None, help="Move to another product at the same time.")
@click.option("--domain", default=None, help="Move the order to this hostname (the customer's own domain).")
@click.option("--dry-run", is_flag=True, help="Show what would be recreated and any data left behind, change nothing.")
@allow_data_risk_option
@wait_option
def orders_change_plan(order, plan, product, domain, dry_run, allow_data_risk, wait):
    """Move the order to another plan (and optionally product or domain); only affected services are recreated."""
    try:
        if product:
            catalog.sync()
        record = _get_order(order)
        if dry_run:
            return _echo_preview(orders.preview_change_plan(record, plan, product)[1])
        outcome = orders.change_plan(record, plan, product, requested_by="cli", domain=domain,
                                     allow_data_risk=allow_data_risk)
    except LiveError as exc:
        _fail(exc)
    _report(outcome, wait)


@orders_cli.command("upgrade")
@click.argument("order")
@click.option("--revision", default=None, help="Hash or commit prefix of the revision (default: the product's current one).")
@click.option("--dry-run", is_flag=True, help="Show what would be recreated and any data left behind, change nothing.")
@allow_data_risk_option
@wait_option
def orders_upgrade(order, revision, dry_run, allow_data_risk, wait):
    """Move an order to another revision of its product (newer, or back to an older one to roll back)."""
    record = _get_order(order)
    try:
        if dry_run:
            return _echo_preview(orders.preview_upgrade(record, revision))
        outcome = orders.upgrade(record, revision, requested_by="cli", allow_data_risk=allow_data_risk)
    except LiveError as exc:
        _fail(exc)
    _report(outcome, wait)


@orders_cli.command("move")
@click.argument("order")
@click.option("--node", required=True, help="The swarm node to move the order to: its hostname or id.")
@wait_option
def orders_move(order, node, wait):
    """Move the order to another swarm node (LIVE_ORCHESTRATOR=swarm): back its data up, restore it on NODE and run
    it there, then remove its volumes from the node it was on. A failure leaves it running where it was."""
    try:
        outcome = orders.move(_get_order(order), node, requested_by="cli")
    except LiveError as exc:
        _fail(exc)
    _report(outcome, wait)


def _echo_preview(preview: dict) -> None:
    click.echo(f"order {preview['order_id']} ({preview['instance']}): revision {preview['from']} -> {preview['to']}")
    for service, action in preview["services"].items():
        click.echo(f"  {service:24} {action}")
    for service in preview["removed"]:
        click.echo(f"  {service:24} remove")
    data = preview["data"]
    for risk in data["risks"]:
        click.echo(f"  DATA RISK: {risk}")
    for volume in data["new_volumes"]:
        state = "exists already (an earlier revision's data)" if volume in data["existing_volumes"] else "new, empty"
        click.echo(f"  volume {volume}: {state}")
    if data["risks"]:
        click.echo("  the change is refused unless --allow-data-risk is given")


@orders_cli.command("list")
@click.option("--status", default=None, help="Only orders with this status.")
@click.option("--json", "as_json", is_flag=True)
def orders_list(status, as_json):
    """List orders."""
    rows = queries.order_views(status, **OPERATOR_VIEW)
    if as_json:
        return _echo_json(rows)
    for row in rows:
        click.echo(f"{row['id']:>5} {row['instance']:24} {row['status']:11} {row['product'] + '/' + row['plan']:28} "
                   f"service {row['service_id']}  {row['hostname']}"
                   + (f"  node {row['node']['hostname']}" if row.get("node") else ""))
        error = row["last_error_detail"] or row["last_error"]
        if error:
            click.echo(f"      last error: {error}")


@orders_cli.command("show")
@click.argument("order")
@click.option("--json", "as_json", is_flag=True)
def orders_show(order, as_json):
    """Show an order, its endpoints, recent operations and events."""
    record = _get_order(order)
    data = queries.order_view(record, **OPERATOR_VIEW)
    data["operations"] = queries.order_operations(record, include_private=True, limit=10)
    data["events"] = queries.order_events(record, per_page=20, include_private=True)["items"]
    if as_json:
        return _echo_json(data)
    data["customer"] = data["customer"]["email"]
    for key in ("id", "service_id", "instance", "hostname", "status", "product", "plan", "revision", "customer", "ingress",
                "last_error"):
        click.echo(f"{key:12} {data[key]}")
    if data["last_error_detail"] and data["last_error_detail"] != data["last_error"]:
        click.echo(f"{'detail':12} {data['last_error_detail']}")  # private: never shown to customers
    if data["node"]:
        click.echo(f"{'node':12} {data['node']['hostname']} ({data['node']['id']})")
    runtime = data["runtime"]
    age = "never" if runtime["age_seconds"] is None else f"{describe_seconds(runtime['age_seconds'])} ago"
    click.echo(f"{'runtime':12} {runtime['state']} (engine mirror, last confirmed {age})")
    for service in runtime["services"]:
        click.echo(f"  {service['service']:24} {service['state']}" + (f" ({service['health']})" if service["health"] else ""))
    drift = data["drift"]
    if drift is not None:
        click.echo(f"{'drift':12} {drift['state']}" + (f" since {drift['failing_since']}: {drift['reason']}"
                                                         if drift["state"] == "failing" else "")
                   + (f", {drift['repairs']} repair(s) in the window" if drift["repairs"] else ""))
        for problem in drift["problems"]:
            click.echo(f"  {problem['service']:24} {problem['kind']}: {problem['detail']}")
    click.echo("endpoints:")
    for e in data["endpoints"]:
        click.echo(f"  {e['application']:12} {e['url']}   local: {e['local_url'] or '-'}")
    if data["detached_volumes"]:
        click.echo("volumes left behind (kept; archived at terminate):")
        for entry in data["detached_volumes"]:
            click.echo(f"  {entry['volume']:24} last used by revision {entry['revision']}, detached {entry['at']}")
    click.echo("operations:")
    for op in data["operations"]:
        reason = op["error_detail"] or op["error"]
        click.echo(f"  {op['id']:>5} {op['kind']:12} {op['state']:10} attempts {op['attempts']}"
                   + (f"  {reason}" if reason else ""))
    click.echo("events:")
    for e in data["events"]:
        click.echo(f"  {e['created_at']} {e['kind']:22} {e['message']}")
        if e["data"].get(PRIVATE_EVENT_DATA):
            click.echo(f"      detail: {e['data'][PRIVATE_EVENT_DATA]}")


@orders_cli.command("logs")
@click.argument("order")
@click.option("--service", default=None, help="Only this service (default: every service, lines prefixed with it).")
@click.option("--tail", type=int, default=DEFAULT_TAIL, show_default=True,
              help=f"The last lines of each service (0 to {MAX_TAIL}).")
@click.option("--since", default=None,
              help="Only lines written from then on: ISO 8601 (UTC without an offset) or a duration (90s, 15m, 2h, "
                   "1d); after 1970-01-01, not in the future.")
@click.option("--follow", "-f", is_flag=True, help="Then print new lines as they are written, until interrupted.")
def orders_logs(order, service, tail, since, follow):
    """Print an order's service logs, read from the engine as they come; the order's secrets are masked. Without
    --follow the read ends after LIVE_LOGS_TIMEOUT_SECONDS (a last line says it was cut); Ctrl-C closes every
    engine stream."""
    record = _get_order(order)
    try:
        stream = logs.open(record, service=service, tail=tail, since=since, follow=follow, include_private=True)
    except LiveError as exc:
        _fail(exc)
    try:
        for line in stream:
            click.echo(line)
    except KeyboardInterrupt:
        pass
    finally:
        stream.close()


# -- backups -------------------------------------------------------------------
backups_cli = AppGroup("backups", help="Backups of orders' data in the store LIVE_BACKUP_STORE (docs/BACKUPS.md). ORDER "
                       "is an order id, an instance identifier or service:<WHMCS service id>.")
live_cli.add_command(backups_cli)


def _size(size: int) -> str:
    """Bytes for people: ``512 B``, ``3.2 MB``, ``1.4 GB`` (powers of 1000)."""
    for unit, factor in (("GB", 1000 ** 3), ("MB", 1000 ** 2), ("kB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def _echo_backup(row: dict, owner: str = "") -> None:
    click.echo(f"{row['backup_id']}  {row['created_at']}  {row['kind']:10} {_size(row['size']):>9}  {owner}revision "
               f"{row['revision']}, plan {row['plan']}, {len(row['artefacts'])} artefact(s): "
               + ", ".join(artefact["name"] for artefact in row["artefacts"]))


@backups_cli.command("list")
@click.argument("order", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backups_list(order, as_json):
    """List an order's backups, newest first, with how its last ones went and the final backups of the same
    customer that may be restored into it; without ORDER, every backup in the store, read from the manifests alone
    (works without the database's orders)."""
    try:
        data = queries.order_backups(_get_order(order)) if order else queries.store_backups()
    except LiveError as exc:
        _fail(exc)
    if as_json:
        return _echo_json(data)
    if not order:
        for row in data:
            _echo_backup(row, f"{row['instance']} (order {row['order_id']}), ")
        click.echo(f"{len(data)} backup(s)")
        return
    for row in data["backups"]:
        _echo_backup(row)
    click.echo(f"{len(data['backups'])} backup(s) of order {data['order_id']} ({data['instance']}); last success: "
               f"{data['last_success_at'] or 'never'}")
    failure = data["last_failure"]
    if failure:
        click.echo(f"last failure: {failure['at']} ({failure['kind']}): {failure['error']}")
    if data["restorable"]:
        click.echo("final backups of the customer's terminated orders that can be restored into it:")
        for row in data["restorable"]:
            _echo_backup(row, f"order {row['order_id']} (service {row['service_id']}), ")


@backups_cli.command("create")
@click.argument("order")
@wait_option
def backups_create(order, wait):
    """Back the order's data up now (an on_demand backup operation); --wait shows its steps."""
    try:
        outcome = orders.back_up(_get_order(order), requested_by="cli")
    except LiveError as exc:
        _fail(exc)
    _report(outcome, wait)


@backups_cli.command("restore")
@click.argument("order")
@click.argument("backup_id")
@wait_option
def backups_restore(order, backup_id, wait):
    """Replace ORDER's data with backup BACKUP_ID's: one of its own, or the final backup of a terminated order of
    the same customer and product. Every checksum is verified first and a safety backup taken; a failure brings the
    order back from it."""
    try:
        record = _get_order(order)
        manifest = queries.find_backup(backup_id)
        outcome = orders.restore(record, backup_id, product=manifest.product, source_order_id=manifest.order_id,
                                 requested_by="cli")
    except LiveError as exc:
        _fail(exc)
    _report(outcome, wait)


@backups_cli.command("verify")
@click.argument("backup_id")
def backups_verify(backup_id):
    """Read every artefact of a backup back and compare it with its manifest; exit 1 and name each problem."""
    try:
        problems = backups.store.verify(backup_id)
    except LiveError as exc:
        _fail(exc)
    for problem in problems:
        click.echo(f"PROBLEM: {problem}")
    if problems:
        click.echo(f"backup {backup_id}: {len(problems)} problem(s): do not rely on it")
        sys.exit(1)
    click.echo(f"backup {backup_id}: every artefact matches its manifest (size and sha256)")


@backups_cli.command("prune")
@click.argument("order", required=False)
def backups_prune(order):
    """Delete the backups retention no longer keeps: of ORDER, or of every order the store has backups of, each
    with its policy's keep (a terminated order keeps its final backups LIVE_BACKUP_KEEP_TERMINATED_DAYS). Prints
    what was deleted; exit 1 when an order could not be pruned."""
    try:
        targets, unknown = ([_get_order(order)], []) if order else queries.orders_with_backups()
    except LiveError as exc:
        _fail(exc)
    failed = 0
    for record in targets:
        try:
            keep = queries.backup_policy(record).keep
            deleted = backups.prune(record, keep)
        except LiveError as exc:
            failed += 1
            click.echo(f"order {record.id} ({record.instance}): FAILED: {exc}")
            continue
        rule = ("terminated: its final backups for LIVE_BACKUP_KEEP_TERMINATED_DAYS" if record.terminated_at
                else "keep " + ", ".join(f"{period} {count}" for period, count in keep.as_dict().items()))
        click.echo(f"order {record.id} ({record.instance}): "
                   + (f"deleted {len(deleted)}: {', '.join(deleted)}" if deleted else "nothing to delete") + f" ({rule})")
    for name in unknown:
        click.echo(f"left alone: {name}: its order is not in this database")
    if failed:
        sys.exit(1)


# -- API keys ------------------------------------------------------------------
apikey_cli = AppGroup("apikey", help="API keys for the HTTP API.")
live_cli.add_command(apikey_cli)


@apikey_cli.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(SCOPES), required=True,
              help="whmcs: lifecycle calls; read: the developer API; admin: everything.")
def apikey_create(name, scope):
    """Create a key; its token is printed once, as the last line."""
    try:
        key, token = create_key(name, scope)
    except LiveError as exc:
        _fail(exc)
    click.echo(f"created API key {key.name} with scope {key.scope}; store the token now, it is not shown again:")
    click.echo(token)


@apikey_cli.command("list")
def apikey_list():
    """List keys (never their tokens)."""
    for key in list_keys():
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        click.echo(f"{key.name:30} {key.scope:6} {state:18} prefix live_{key.token_prefix}_  last used {used}")


@apikey_cli.command("revoke")
@click.argument("name")
def apikey_revoke(name):
    """Revoke a key; requests with it get 401 from now on."""
    try:
        key = revoke_key(name)
    except LiveError as exc:
        _fail(exc)
    click.echo(f"revoked API key {key.name}")


# -- webhooks --------------------------------------------------------------------
webhooks_cli = AppGroup("webhooks", help="Outbound alerts (LIVE_WEBHOOK_URLS): deliveries and their attempts.")
live_cli.add_command(webhooks_cli)


@webhooks_cli.command("list")
@click.option("--state", type=click.Choice([str(state) for state in DeliveryState]), help="Only these deliveries.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def webhooks_list(state, limit, as_json):
    """The newest deliveries first: alert, state, attempts, last answer or error, target (scheme, host and port only:
    no user, password, path or query); --json adds every attempt (history)."""
    rows = alerts.listing(state, limit)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        answer = row["last_error"] or (f"HTTP {row['last_status']}" if row["last_status"] else "not tried yet")
        when = f"next {row['next_attempt_at']}" if row["state"] == "pending" else (row["finished_at"] or "")
        click.echo(f"{row['id']:>6} {row['created_at']} {row['alert']:16} {row['state']:9} "
                   f"{row['attempts']}/{row['max_attempts']} {answer}  {when}  {row['url']}")
    if not rows:
        click.echo("no deliveries" + (f" {state}" if state else ""))


@webhooks_cli.command("retry")
@click.argument("ids", nargs=-1, type=click.IntRange(1, MAX_ID))
def webhooks_retry(ids):
    """Queue failed deliveries again (IDS, or every failed one) with a fresh count of attempts; the worker sends
    them within a second."""
    count = alerts.retry(list(ids) if ids else None)
    if ids and not count:
        raise click.ClickException(f"no failed delivery among {', '.join(map(str, ids))} (see `live webhooks list`)")
    click.echo(f"{count} delivery queued again" if count == 1 else f"{count} deliveries queued again")
