"""Request and response schemas: they validate input and generate the OpenAPI document."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Email, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.db import MAX_ID
from app.orders.lifecycle import LIFECYCLE_RESULTS, CallResult, OperationState, OrderStatus
from app.orders.logs import DEFAULT_TAIL, MAX_TAIL

MAX_WAIT_SECONDS = 120
ACCOUNTS_PAGE, ACCOUNTS_PAGE_MAX = 500, 1000  # GET /whmcs/v1/accounts: services per page, default and most


def choices(members) -> list[str]:
    """The plain texts of enum ``members``, in their order: OneOf's choices and the OpenAPI ``enum``."""
    return [member.value for member in members]


def wait_field() -> Float:
    return Float(load_default=0, validate=Range(min=0, max=MAX_WAIT_SECONDS),
                 metadata={"description": f"Seconds to wait for the operation to end (0-{MAX_WAIT_SECONDS})."})


# -- errors -------------------------------------------------------------------
class ErrorBody(Schema):
    code = String(required=True, metadata={"description": "Machine-readable error code, e.g. not_found."})
    message = String(required=True, metadata={"description": "What went wrong, for people."})
    details = Dict(required=True, metadata={"description": "Extra facts, e.g. the invalid fields."})


class ErrorOut(Schema):
    error = Nested(ErrorBody, required=True)


# -- shared pieces ------------------------------------------------------------
class StepOut(Schema):
    at = String(required=True)
    attempt = Integer(required=True)
    message = String(required=True)


class OperationOut(Schema):
    id = Integer(required=True)
    order_id = Integer(required=True)
    kind = String(required=True)
    state = String(required=True, validate=OneOf(choices(OperationState)))
    params = Dict(required=True)
    attempts = Integer(required=True)
    max_attempts = Integer(required=True)
    steps = List(Nested(StepOut), required=True)
    error = String(allow_none=True, required=True, metadata={
        "description": "Why it failed (or why it is retried), in words safe to show customers."})
    error_detail = String(allow_none=True, metadata={
        "description": "The full, private reason (engine output, exception text); only for admin keys."})
    requested_by = String(required=True)
    created_at = String(required=True)
    started_at = String(allow_none=True, required=True)
    finished_at = String(allow_none=True, required=True)


class WhmcsEndpointOut(Schema):
    """An endpoint as the WHMCS endpoints show it (customers see it): never a local URL."""

    application = String(required=True)
    service = String(required=True)
    url = String(required=True, metadata={"description": "Public URL, without a trailing slash."})


class EndpointOut(WhmcsEndpointOut):
    """An endpoint as staff see it (developer API, CLI): with its local URL while the order runs."""

    local_url = String(allow_none=True, required=True, metadata={
        "description": "http://127.0.0.1:<port><path> on the Docker host, for staff only; null unless the order is "
                       "active with no operation in progress (once its containers stop, another order may take the "
                       "port)."})


class DetachedVolumeOut(Schema):
    volume = String(required=True)
    revision = String(required=True, metadata={"description": "The revision that last mounted it."})
    at = String(required=True)


class CustomerRefOut(Schema):
    id = Integer(required=True)
    email = String(required=True)


class BackupFailureOut(Schema):
    at = String(required=True, metadata={"description": "When the attempt ended (ISO 8601, UTC)."})
    kind = String(required=True, metadata={
        "description": "Why it was taken: scheduled, on_demand, pre_change, pre_restore or final."})
    error = String(required=True, metadata={"description": "Why it failed, in words safe to show customers."})


class BackupSummaryOut(Schema):
    last_success_at = String(allow_none=True, required=True, metadata={
        "description": "When the newest successful backup finished (ISO 8601, UTC); null: none yet."})
    last_failure = Nested(BackupFailureOut, allow_none=True, required=True, metadata={
        "description": "The newest failed backup attempt, whenever it was (compare its at with last_success_at)."})


class NodeOut(Schema):
    id = String(required=True, metadata={"description": "The swarm node's id."})
    hostname = String(required=True, metadata={"description": "The node's hostname when the order was placed."})


class DriftProblemOut(Schema):
    service = String(required=True)
    kind = String(required=True, metadata={
        "description": "missing, exited, dead, paused, created (never started), unhealthy, config_changed or "
                       "crash_loop."})
    detail = String(required=True)


class DriftOut(Schema):
    state = String(required=True, validate=OneOf(["ok", "drifted", "repairing", "failing"]), metadata={
        "description": "ok: what the last deploy made runs; drifted: it does not (reported); repairing: a redeploy "
                       "was queued for it; failing: a crash loop, or drift again after the repairs allowed "
                       "(not redeployed until an operation succeeds on the order)."})
    problems = List(Nested(DriftProblemOut), required=True)
    detected_at = String(allow_none=True, required=True)
    failing_since = String(allow_none=True, required=True)
    reason = String(allow_none=True, required=True, metadata={"description": "Why the order is failing."})
    repairs = Integer(required=True, metadata={
        "description": "Redeploys the drift checker queued within LIVE_DRIFT_WINDOW_SECONDS."})
    expected_at = String(required=True, metadata={"description": "When what should run was last recorded."})


class RuntimeServiceOut(Schema):
    service = String(required=True, metadata={"description": "The compose service."})
    state = String(required=True, metadata={
        "description": "Its container's state as the engine mirror has it: running, created, restarting, paused, "
                       "exited, dead; missing (no container); unknown (the mirror is not fresh)."})
    health = String(allow_none=True, required=True, metadata={
        "description": "healthy, unhealthy or starting; null without a healthcheck (or unknown)."})


class RuntimeOut(Schema):
    state = String(required=True, validate=OneOf(["running", "starting", "degraded", "stopped", "unknown"]), metadata={
        "description": "What runs of the order, from the worker's mirror of the engine (never asked of the engine "
                       "per request): running, starting, degraded (some services are down), stopped (none runs), "
                       "unknown (the mirror is not fresh: no worker follows the engine, or its stream is down; never "
                       "a stale running). See docs/MIRROR.md."})
    observed_at = String(allow_none=True, required=True, metadata={
        "description": "When the mirror last confirmed the engine's state (ISO 8601, UTC); null: never."})
    age_seconds = Float(allow_none=True, required=True, metadata={"description": "Seconds since observed_at."})
    services = List(Nested(RuntimeServiceOut), required=True)


class OrderOut(Schema):
    id = Integer(required=True)
    service_id = Integer(required=True)
    instance = String(required=True)
    hostname = String(required=True)
    status = String(required=True, validate=OneOf(choices(OrderStatus)))
    product = String(required=True)
    plan = String(required=True)
    revision = String(required=True)
    customer = Nested(CustomerRefOut, required=True)
    endpoints = List(Nested(EndpointOut), required=True)
    ingress = String(required=True, validate=OneOf(["applied", "pending", "off"]), metadata={
        "description": "Whether the proxy serves the order's URLs as the order is now: applied; pending (the "
                       "worker applies it once the proxy answers); off (no ingress configured)."})
    operation = Nested(OperationOut, allow_none=True, required=True,
                       metadata={"description": "The operation in progress, else the latest one."})
    last_error = String(allow_none=True, required=True, metadata={
        "description": "Why the last operation failed, in words safe to show customers."})
    last_error_detail = String(allow_none=True, metadata={
        "description": "The full, private reason; only for admin keys."})
    created_at = String(required=True)
    updated_at = String(required=True)
    terminated_at = String(allow_none=True, required=True)
    detached_volumes = List(Nested(DetachedVolumeOut), required=True, metadata={
        "description": "Volumes an operator-accepted change left behind: kept, archived at terminate."})
    backups = Nested(BackupSummaryOut, required=True, metadata={
        "description": "How the order's backups went (GET .../backups lists them)."})
    node = Nested(NodeOut, allow_none=True, required=True, metadata={
        "description": "The Docker Swarm node the order runs on (LIVE_ORCHESTRATOR=swarm); null on one engine "
                       "or before the order is placed."})
    runtime = Nested(RuntimeOut, required=True, metadata={
        "description": "What runs of the order, from the engine mirror (docs/MIRROR.md)."})
    drift = Nested(DriftOut, allow_none=True, required=True, metadata={
        "description": "What the worker's drift checker made of the order's containers (docs/OPERATIONS.md, "
                       "\"Drift\"); null before any deploy recorded what should run."})
    secrets = Dict(keys=String(), values=String(),
                   metadata={"description": "Generated passwords; only for whmcs and admin keys."})


class WhmcsOrderOut(OrderOut):
    """An order as the WHMCS endpoints answer it: endpoints without local URLs."""

    endpoints = List(Nested(WhmcsEndpointOut), required=True)


class ServiceInfoOut(WhmcsOrderOut):
    recent_operations = List(Nested(OperationOut), required=True,
                             metadata={"description": "The last operations, newest first (at most 10)."})


class FailureQuery(Schema):
    since = DateTime(load_default=None, metadata={"description": "ISO 8601; default: 24 hours ago."})


class FailureOut(Schema):
    service_id = Integer(required=True)
    instance = String(required=True)
    order_status = String(required=True)
    operation_id = Integer(required=True)
    kind = String(required=True)
    error = String(required=True)
    finished_at = String(required=True)
    backup_kind = String(required=True, allow_none=True, metadata={
        "description": "the backup whose failure failed this operation (scheduled, on_demand, pre_change, "
                       "pre_restore, final), null when none did"})


class FailingOrderOut(Schema):
    service_id = Integer(required=True)
    instance = String(required=True)
    order_status = String(required=True)
    failing_since = String(required=True)
    reason = String(required=True, metadata={"description": "Why the drift checker calls it failing."})
    problems = List(Nested(DriftProblemOut), required=True)


class FailuresOut(Schema):
    since = String(required=True)
    failures = List(Nested(FailureOut), required=True)
    failing_orders = List(Nested(FailingOrderOut), required=True, metadata={
        "description": "Orders the drift checker calls failing now (a crash loop, or drift again after its "
                       "repairs), whenever that began; the checker redeploys none of them until an operation "
                       "succeeds on it."})


class PageQuery(Schema):
    page = Integer(load_default=1, validate=Range(min=1, max=100000))
    per_page = Integer(load_default=50, validate=Range(min=1, max=200))


class PageMeta(Schema):
    page = Integer(required=True)
    per_page = Integer(required=True)
    total = Integer(required=True)


# -- WHMCS lifecycle ----------------------------------------------------------
class ClientIn(Schema):
    id = Integer(required=True, validate=Range(min=1, max=MAX_ID), metadata={"description": "WHMCS client id (userid)."})
    email = Email(required=True, validate=Length(max=254))
    firstname = String(load_default="", validate=Length(max=100))
    lastname = String(load_default="", validate=Length(max=100))
    companyname = String(load_default="", validate=Length(max=200))


def whmcs_name_field(what: str, **options) -> String:
    """A product or plan name as WHMCS admins type it: matched without regard to case and spaces."""
    return String(validate=Length(1, 64), metadata={
        "description": f"The {what}; matched without regard to case and surrounding spaces. An unknown one is "
                       "a 422 naming the value and the valid choices."}, **options)


def allow_data_risk_field() -> Boolean:
    return Boolean(load_default=False, metadata={
        "description": "Accept a change that leaves data behind (a volume renamed, removed or moved); without it such "
                       "a change is a 409 data_risk. The old volumes are kept, listed on the order, archived at "
                       "terminate."})


def domain_field() -> String:
    return String(load_default=None, allow_none=True, validate=Length(max=253), metadata={
        "description": "The customer's own domain (a DNS name, never an IP address); empty: "
                       "<instance>.<base domain>. A hostname belongs to one order until it is terminated."})


class CreateIn(Schema):
    client = Nested(ClientIn, required=True)
    product = whmcs_name_field("Live product (slug)", required=True)
    plan = whmcs_name_field("product's plan", required=True)
    username = String(load_default=None, allow_none=True, validate=Length(max=100))
    domain = domain_field()
    password = String(load_default=None, allow_none=True, validate=Length(max=1000), metadata={
        "description": "WHMCS's service password: the value of the product's credential variable (product.yml "
                       "credential) instead of a generated one; ignored by products without one. Masked everywhere."})
    wait = wait_field()


class ChangePasswordIn(Schema):
    password = String(required=True, validate=Length(min=1, max=1000), metadata={
        "description": "The new value of the product's credential variable; the product's rules (length, symbols) "
                       "apply. Never answered nor logged."})
    wait = wait_field()


class WaitIn(Schema):
    wait = wait_field()


class SuspendIn(Schema):
    reason = String(load_default="", validate=Length(max=500))
    wait = wait_field()


class ChangePackageIn(Schema):
    product = whmcs_name_field("Live product (slug); default: the order's", load_default=None, allow_none=True)
    plan = whmcs_name_field("product's plan", required=True)
    domain = domain_field()
    wait = wait_field()


class WorkerOut(Schema):
    alive = Boolean(required=True, metadata={
        "description": "A worker's heartbeat is fresh (younger than max(15 s, 10 x its poll interval)): recorded "
                       "operations are being run. false: no worker runs them; they wait, recorded, until one does."})
    heartbeat_age_seconds = Float(allow_none=True, required=True, metadata={
        "description": "Seconds since the newest worker heartbeat; null when no worker has one."})


class LifecycleOut(Schema):
    result = String(required=True, validate=OneOf(choices(LIFECYCLE_RESULTS)), metadata={
        "description": "queued: recorded, not started yet (state pending: waiting for the worker, or for a retry); "
                       "running: started and not finished when the call answered; succeeded/failed: finished; "
                       "unchanged: nothing to do (already in that state). queued and running are 202: check "
                       "worker.alive, since without a worker nothing runs."})
    message = String(required=True, metadata={"description": "For billing staff: what happened, or why it failed."})
    order = Nested(WhmcsOrderOut, allow_none=True, required=True)
    operation = Nested(OperationOut, allow_none=True, required=True)
    worker = Nested(WorkerOut, required=True, metadata={
        "description": "Whether a worker runs the bridge's operations, as the call answered."})


class ApiLifecycleOut(LifecycleOut):
    """A lifecycle answer of the developer API: the order as staff see it (local URLs)."""

    order = Nested(OrderOut, allow_none=True, required=True)


class BackupArtefactOut(Schema):
    name = String(required=True, metadata={"description": "volume.<volume>.tar or dump.<service>."})
    size = Integer(required=True, metadata={"description": "Bytes."})
    sha256 = String(required=True)


class BackupOut(Schema):
    backup_id = String(required=True, metadata={"description": "<UTC time>-<8 hex digits>; sorts by time."})
    created_at = String(required=True, metadata={"description": "When the backup began (ISO 8601, UTC)."})
    kind = String(required=True, metadata={
        "description": "scheduled, on_demand, pre_change (before a change of plan, an upgrade or a move), pre_restore "
                       "(the safety backup of a restore) or final (at terminate)."})
    size = Integer(required=True, metadata={"description": "Bytes of all artefacts."})
    revision = String(required=True, metadata={"description": "The product revision the order was on."})
    plan = String(required=True)
    services = List(String(), required=True, metadata={"description": "The product's services it covers."})
    artefacts = List(Nested(BackupArtefactOut), required=True)
    order_id = Integer(required=True, metadata={"description": "The order it was taken of."})
    service_id = Integer(allow_none=True, required=True, metadata={"description": "That order's WHMCS service id."})


class BackupsOut(BackupSummaryOut):
    order_id = Integer(required=True)
    instance = String(required=True)
    backups = List(Nested(BackupOut), required=True, metadata={
        "description": "The order's backups in the store, newest first: only backups whose every artefact was "
                       "written and read back are listed."})
    restorable = List(Nested(BackupOut), required=True, metadata={
        "description": "Final backups of the same customer's terminated orders of the same product, newest first: "
                       "staff may restore one into this order (POST .../backups/{backup_id}/restore)."})


class TestConnectionOut(Schema):
    ok = Boolean(required=True)
    version = String(required=True)
    key = String(required=True, metadata={"description": "Name of the API key used."})
    products = Integer(required=True)
    docker = String(required=True)


class ProductSummaryOut(Schema):
    slug = String(required=True)
    name = String(required=True)
    valid = Boolean(required=True)
    plans = List(String(), required=True)


class ProductListOut(Schema):
    products = List(Nested(ProductSummaryOut), required=True)


class UsageQuery(Schema):
    service_id = List(Integer(validate=Range(min=1, max=MAX_ID)), load_default=None,
                      metadata={"description": "Only these services (repeat the parameter); default all."})


class LogsQuery(Schema):
    service = String(load_default=None, validate=Length(min=1, max=64), metadata={
        "description": "Only this service of the order (a 404 names the order's services); default: every service, "
                       "each line prefixed with `<service> | `."})
    tail = Integer(load_default=DEFAULT_TAIL, validate=Range(min=0, max=MAX_TAIL), metadata={
        "description": f"The last lines of each service (0 to {MAX_TAIL}; default {DEFAULT_TAIL})."})
    since = String(load_default=None, validate=Length(max=64), metadata={
        "description": "Only lines written from then on: ISO 8601 (`2026-12-01T08:00:00Z`; without an offset: UTC) "
                       "or a duration back from now (`90s`, `15m`, `2h`, `1d`); after 1970-01-01, not in the future."})


class ServiceUsageOut(Schema):
    service_id = Integer(required=True)
    status = String(required=True)
    sampled_at = String(allow_none=True, required=True, metadata={
        "description": "When the worker's usage sampler measured memory, CPU and containers (UTC); null: not sampled "
                       "yet, and those figures are null."})
    memory_mb = Float(allow_none=True, required=True,
                      metadata={"description": "Memory used by its running containers, in MB (MiB)."})
    memory_limit_mb = Float(allow_none=True, required=True, metadata={
        "description": "Sum of its services' memory limits, in MB; null when one is unlimited (or not sampled yet)."})
    cpu_seconds = Float(allow_none=True, required=True,
                        metadata={"description": "CPU time used by its running containers since each started."})
    containers_running = Integer(allow_none=True, required=True)
    containers_total = Integer(allow_none=True, required=True)
    disk_sampled_at = String(allow_none=True, required=True, metadata={
        "description": "When its disk was measured (UTC); null: not yet, and disk_mb is null."})
    disk_mb = Float(allow_none=True, required=True,
                    metadata={"description": "Disk used by the order's named volumes, in MB (MiB)."})
    backup_mb = Float(required=True, metadata={
        "description": "Backup storage the order uses, in MB (MiB): the sum of the sizes of its stored backups (every "
                       "backup that succeeded and is not pruned or deleted: scheduled, on demand, before a change or "
                       "restore), from the bridge's backup records; 0 without any. Not sampled: always current."})


class UsageOut(Schema):
    services = List(Nested(ServiceUsageOut), required=True)


class AccountsQuery(Schema):
    after = Integer(load_default=0, validate=Range(min=0, max=MAX_ID), metadata={
        "description": "The cursor: only services with a larger WHMCS service id (the previous page's `next`); "
                       "default 0, the first page."})
    limit = Integer(load_default=ACCOUNTS_PAGE, validate=Range(min=1, max=ACCOUNTS_PAGE_MAX), metadata={
        "description": f"Services per page (1 to {ACCOUNTS_PAGE_MAX}; default {ACCOUNTS_PAGE})."})


class AccountOut(Schema):
    service_id = Integer(required=True, metadata={"description": "The WHMCS service id."})
    instance = String(required=True, metadata={"description": "The instance name: WHMCS's username of the service."})
    hostname = String(required=True, metadata={"description": "The order's host name: WHMCS's domain."})
    email = String(required=True, metadata={"description": "The customer's email address."})
    client_id = Integer(allow_none=True, required=True, metadata={"description": "The WHMCS client id."})
    product = String(required=True, metadata={"description": "The Live product (slug): the product's configoption1."})
    plan = String(required=True)
    order_status = String(required=True, validate=OneOf(choices(OrderStatus)), metadata={
        "description": "The order's status in the bridge's words."})
    whmcs_status = String(required=True, validate=OneOf(["Pending", "Active", "Suspended", "Terminated"]), metadata={
        "description": "The same in WHMCS's words (WHMCS\\Service\\Status): pending, and failed before its create "
                       "ever succeeded, are Pending; active, and failed after it ran (a restore, move or terminate "
                       "failed), Active; suspended Suspended; terminated Terminated."})
    created_at = String(required=True, metadata={"description": "When the order was made (ISO 8601, UTC)."})


class AccountPageOut(Schema):
    items = List(Nested(AccountOut), required=True, metadata={
        "description": "Every order the bridge knows (terminated ones too), by WHMCS service id, ascending."})
    next = Integer(allow_none=True, required=True, metadata={
        "description": "The `after` of the next page; null: this is the last page."})


# -- developer API ------------------------------------------------------------
class OrderQuery(PageQuery):
    status = String(load_default=None, validate=OneOf(choices(OrderStatus)))
    product = String(load_default=None, validate=Length(max=64))
    customer_id = Integer(load_default=None, validate=Range(min=1, max=MAX_ID))
    service_id = Integer(load_default=None, validate=Range(min=1, max=MAX_ID))


class OrderPageOut(PageMeta):
    items = List(Nested(OrderOut), required=True)


class OperationListOut(Schema):
    items = List(Nested(OperationOut), required=True)


class EventOut(Schema):
    id = Integer(required=True)
    order_id = Integer(allow_none=True, required=True)
    operation_id = Integer(allow_none=True, required=True)
    kind = String(required=True)
    message = String(required=True)
    actor = String(required=True)
    data = Dict(required=True)
    created_at = String(required=True)


class EventPageOut(PageMeta):
    items = List(Nested(EventOut), required=True)


class ProductEndpointOut(Schema):
    application = String(required=True)
    service = String(required=True)
    port = Integer(required=True)
    path = String(required=True)


class ProductOut(Schema):
    slug = String(required=True)
    name = String(required=True)
    description = String(required=True)
    valid = Boolean(required=True)
    errors = List(String(), required=True)
    revision = String(allow_none=True, required=True)
    plans = Dict(keys=String(), values=Dict(keys=String(), values=String()), required=True)
    endpoints = List(Nested(ProductEndpointOut), required=True)
    services = List(String(), required=True)


class ProductsOut(Schema):
    items = List(Nested(ProductOut), required=True)


class RevisionOut(Schema):
    revision = String(required=True)
    content_hash = String(required=True)
    commit = String(allow_none=True, required=True)
    valid = Boolean(required=True)
    errors = List(String(), required=True)
    created_at = String(required=True)


class RevisionsOut(Schema):
    items = List(Nested(RevisionOut), required=True)


class SyncOut(Schema):
    source = String(required=True)
    added = List(String(), required=True)
    changed = List(String(), required=True)
    unchanged = List(String(), required=True)
    removed = List(String(), required=True)
    invalid = Dict(keys=String(), values=List(String()), required=True)


class UpgradeIn(Schema):
    revision = String(load_default=None, allow_none=True, validate=Length(7, 64),
                      metadata={"description": "Hash or commit prefix; default: the product's current revision."})
    dry_run = Boolean(load_default=False, metadata={"description": "Only report what would be recreated."})
    allow_data_risk = allow_data_risk_field()
    wait = wait_field()


class MoveIn(Schema):
    node = String(required=True, validate=Length(1, 128), metadata={
        "description": "The swarm node to move the order to: its hostname or its id (`docker node ls`)."})
    wait = wait_field()


class ChangePlanIn(Schema):
    plan = whmcs_name_field("product's plan", required=True)
    product = whmcs_name_field("Live product (slug); default: the order's", load_default=None, allow_none=True)
    domain = domain_field()
    dry_run = Boolean(load_default=False, metadata={
        "description": "Only report what would be recreated and what would happen to the data."})
    allow_data_risk = allow_data_risk_field()
    wait = wait_field()


class DataReportOut(Schema):
    risks = List(String(), required=True, metadata={"description": "What the change would do to the data; empty: "
                                                                   "nothing is left behind."})
    left_behind = List(String(), required=True, metadata={"description": "Volumes no service would mount any more "
                                                                         "(kept and archived at terminate)."})
    new_volumes = List(String(), required=True)
    existing_volumes = List(String(), required=True, metadata={
        "description": "New volumes that already exist on the engine (an earlier revision's data), so not empty."})


class PreviewOut(Schema):
    order_id = Integer(required=True)
    instance = String(required=True)
    from_ = String(required=True, data_key="from")
    to = String(required=True)
    services = Dict(keys=String(), values=String(), required=True,
                    metadata={"description": "service -> create, recreate, start, unpause or noop"})
    removed = List(String(), required=True)
    data = Nested(DataReportOut, required=True)


class UpgradeOut(Schema):
    result = String(required=True, validate=OneOf(choices(CallResult)), metadata={
        "description": "As for lifecycle calls; preview: dry_run; refused (product upgrades): the order's data would "
                       "be left behind, the message says how."})
    message = String(required=True)
    order = Nested(OrderOut, allow_none=True, required=True)
    operation = Nested(OperationOut, allow_none=True, required=True)
    preview = Nested(PreviewOut, allow_none=True, required=True)
    worker = Nested(WorkerOut, metadata={"description": "As for lifecycle calls; absent for preview and refused."})


class ProductUpgradeIn(Schema):
    revision = String(load_default=None, allow_none=True, validate=Length(7, 64))
    dry_run = Boolean(load_default=False)
    allow_data_risk = allow_data_risk_field()


class ProductUpgradeOut(Schema):
    orders = List(Nested(UpgradeOut), required=True)


class CatalogStatusOut(Schema):
    source = String(required=True)
    commit = String(allow_none=True, required=True)
    last_attempt_at = String(allow_none=True, required=True)
    last_success_at = String(allow_none=True, required=True)
    last_error = String(allow_none=True, required=True, metadata={
        "description": "Whether the last sync failed, without internal detail."})
    last_error_detail = String(allow_none=True, metadata={
        "description": "The source's error text (URLs, server answers); only for admin keys."})
    sync_requested = Boolean(required=True)


class WebhookOut(Schema):
    sync = String(required=True, validate=OneOf(("requested", "ignored")))
    reason = String(required=True)


class CustomerOut(Schema):
    id = Integer(required=True)
    whmcs_client_id = Integer(allow_none=True, required=True)
    email = String(required=True)
    first_name = String(required=True)
    last_name = String(required=True)
    company = String(required=True)
    created_at = String(required=True)
    updated_at = String(required=True)


class CustomerQuery(PageQuery):
    email = String(load_default=None, validate=Length(max=254))


class CustomerPageOut(PageMeta):
    items = List(Nested(CustomerOut), required=True)


# -- GeoCat Live 1.0 ------------------------------------------------------------
class LegacyServiceOut(Schema):
    application = String(required=True)
    url = String(required=True)
    status = String(required=True, validate=OneOf(("SERVICE_RUNNING", "SERVICE_WAITING", "SERVICE_ERROR")))


class LegacyOrderOut(Schema):
    services = List(Nested(LegacyServiceOut), required=True)


# -- ingress ------------------------------------------------------------------
class AskQuery(Schema):
    domain = String(required=True, validate=Length(min=1, max=253),
                    metadata={"description": "The hostname a TLS client asked for (SNI)."})


class AskOut(Schema):
    domain = String(required=True)
    allowed = Boolean(required=True, metadata={"description": "Always true: a refused hostname is answered 404."})
