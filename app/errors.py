"""Live's own exceptions: one tree, rooted at :class:`LiveError`.

Errors of external libraries (docker, peewee, yaml, jsonschema, python-gitlab, boto3)
are translated into these at the adapter boundary, so callers never catch a
library's type.

Every error carries two texts:

- the **message** (``str(exc)``, ``exc.message``): the full, private text with
  whatever the bridge knows (host names, URLs, image references, engine
  output). Logs, the CLI and admin-scope API keys see it;
- the **public** text (``exc.public``): safe for customers, the WHMCS client
  area and endpoints without credentials. A raiser may pass ``public=``;
  otherwise the class's ``default_public`` is used, or the message itself for
  classes whose messages the bridge composes from the caller's own input
  (``default_public = None``).

Each class also declares its HTTP status and its JSON ``error.code``;
``app/web/errors.py`` maps errors with these attributes alone, and the
"Errors" table of docs/API.md lists every class (a test keeps both in step).
"""
from __future__ import annotations

INTERNAL_PUBLIC = "an internal error occurred; the operators have the details"


class LiveError(Exception):
    """Base class of every error the bridge raises on purpose.

    ``LiveError(message, *, public=None, **details)``: ``message`` is the
    private text, ``public`` the text anyone may see, ``details`` extra facts
    for operators (shown along with the message, never with the public text).
    """

    #: The HTTP status of an API request that fails with this error.
    http_status = 500
    #: The JSON ``error.code``.
    code = "internal_error"
    #: Whether retrying the same work later may succeed.
    transient = False
    #: Public text when the raiser gives none; ``None``: the message itself is public.
    default_public: str | None = INTERNAL_PUBLIC

    def __init__(self, message: str, *, public: str | None = None, **details):
        super().__init__(message)
        self.message = message
        self.details = details
        self.public = public or (message if self.default_public is None else self.default_public)

    def __str__(self) -> str:
        return self.message


# -- the caller asked for something wrong: messages are built from its own input --
class NotFound(LiveError):
    """A requested entity (order, product, operation) does not exist."""

    http_status = 404
    code = "not_found"
    default_public = None


class OrderNotFound(NotFound):
    """No order matches the reference given (e.g. a WHMCS service id)."""

    code = "order_not_found"


class InvalidRequest(LiveError):
    """The caller asked for something malformed (unknown plan, bad argument)."""

    http_status = 422
    code = "validation_error"
    default_public = None


class NamingError(LiveError):
    """An instance identifier or hostname cannot be derived from the input."""

    http_status = 422
    code = "validation_error"
    default_public = None


class InterpolationError(LiveError):
    """A ``${VAR}`` could not be resolved (undefined variable, bad syntax)."""

    http_status = 422
    code = "validation_error"
    default_public = None


class ProductError(LiveError):
    """A product definition is invalid; ``errors`` lists every problem found (private: only the headline is public)."""

    http_status = 422
    code = "product_invalid"

    def __init__(self, slug: str, errors: list[str]):
        self.slug = slug
        self.errors = list(errors)
        super().__init__(f"product {slug!r} is invalid: " + "; ".join(self.errors),
                         public=f"product {slug!r} is invalid", product=slug, errors=self.errors)


class StackSpecError(LiveError):
    """A service entry of a rendered compose file cannot be turned into a container definition."""

    http_status = 422
    code = "product_invalid"
    default_public = "the product's service definition is invalid"


class YamlContentError(LiveError):
    """A document that parses as YAML but cannot be read as written (see ``app/yamlfile.py``).

    ``str(error)`` is the complete explanation, starting with the path of the
    value (``services.web.environment``) when it has one, and naming the line.
    """

    http_status = 422
    code = "product_invalid"
    default_public = "a product file cannot be read as written"


class UnreadableFile(LiveError):
    """One path of a product cannot be read as a product file; ``str()`` is the reason, without the path."""

    http_status = 422
    code = "product_invalid"
    default_public = "a product file cannot be read"


class WorkerAlreadyRunning(LiveError):
    """A second worker was started against the same database."""

    http_status = 409
    code = "worker_running"
    default_public = None


# -- an internal system failed: the public text is a fixed sentence ----------------
class ConfigError(LiveError):
    """The service configuration (environment) is invalid."""

    code = "config_error"
    default_public = "the service is misconfigured; the operators have the details"


class DatabaseUnavailable(LiveError):
    """The database cannot be reached or failed to answer."""

    http_status = 503
    code = "unavailable"
    transient = True
    default_public = "the database is unavailable; try again shortly"


class CatalogSourceError(LiveError):
    """The catalog source cannot be read now; the last good catalog stays in use."""

    http_status = 503
    code = "unavailable"
    transient = True
    default_public = "the product catalog cannot be read right now"


class EngineUnavailable(LiveError):
    """The container engine cannot be reached or answered with a server error."""

    http_status = 503
    code = "unavailable"
    transient = True
    default_public = "the container platform is unavailable right now"


class IngressUnavailable(LiveError):
    """The proxy's admin API (Caddy) cannot be reached, or refused a change; routes stay pending and the
    worker's resync applies them once it answers (operations never fail for it)."""

    http_status = 503
    code = "unavailable"
    transient = True
    default_public = "the proxy is unavailable right now"


class EngineOperationError(LiveError):
    """The container engine refused an operation; retrying the same call will not help."""

    http_status = 502
    code = "engine_refused"
    default_public = "the container platform refused the operation"


class HostPortInUse(EngineOperationError):
    """A host port a container publishes is taken by another container or process (``port`` detail: the number)."""


class ImageMissing(EngineOperationError):
    """An image is not present locally and could not be pulled."""

    code = "image_missing"
    default_public = "a service image is not available"


class CommandFailed(EngineOperationError):
    """A command run in a service's container (a backup's dump, a restore) exited with a non-zero code.

    The message names the container, the command and the exit code, and ends with the last 4 KiB of its
    error output; details ``exit_code`` and ``output`` (that tail; private, like the message).
    """

    code = "command_failed"
    default_public = "a command in one of the order's services failed"


class NoCapacity(LiveError):
    """No swarm node may take an order: none is ready, active and in the pool, or none has the memory the
    order reserves unreserved (the message names the nodes and the figures; docs/SCALING.md, "Placement")."""

    http_status = 503
    code = "no_capacity"
    default_public = "no machine has room for this service right now"


class HealthCheckFailed(LiveError):
    """A service did not become healthy (or exited) within its time limit; the message names only services."""

    http_status = 502
    code = "service_unhealthy"
    default_public = None


class UpstreamFailed(LiveError):
    """A service was not started because one it depends on failed (the message quotes that failure)."""

    http_status = 502
    code = "service_unhealthy"
    default_public = "a service was not started because a service it depends on failed"


class ArchiveError(LiveError):
    """A volume could not be archived; the volume is kept."""

    code = "archive_failed"
    default_public = "a data volume could not be archived; it was kept"


class ArchiveHelperMissing(ArchiveError):
    """The archive helper image (``LIVE_HELPER_IMAGE``) is not on the engine; nothing of the order was deleted."""

    code = "archive_helper_missing"
    default_public = "the archive tool of the platform is not installed; nothing was deleted"


class BackupStoreError(LiveError):
    """The backup store (``LIVE_BACKUP_STORE``: a folder or an S3 bucket) failed, or holds a backup that is not
    what its manifest says.

    The message names the store's location (``s3://bucket/prefix`` at its endpoint, or the path) and the cause,
    never a credential. ``transient`` is set per error: true when the store could not be reached or answered
    with a server error (retrying later may succeed), false otherwise (refused, missing, corrupted).
    """

    http_status = 503
    code = "backup_store"
    default_public = "the backup storage cannot be used right now"

    def __init__(self, message: str, *, transient: bool = False, public: str | None = None, **details):
        super().__init__(message, public=public, **details)
        self.transient = transient


class BackupCorrupt(LiveError):
    """A backup does not match its manifest (an artefact missing, or of another size or sha256): it is not
    restored, and nothing of the order was touched. Not transient."""

    http_status = 409
    code = "backup_corrupt"
    default_public = "the backup is damaged and was not restored; nothing was changed"


class Conflict(LiveError):
    """The request contradicts the existing state (e.g. another product for the same service)."""

    http_status = 409
    code = "conflict"
    default_public = None


class HostnameTaken(Conflict):
    """The hostname belongs to another order that is not terminated (the message never names it)."""

    code = "hostname_taken"


class DataRiskError(Conflict):
    """A change would leave the customer's data behind (a volume renamed, removed or moved).

    ``report`` is the :class:`app.stacks.data_risk.DataRiskReport`. Operators may accept the risk
    explicitly (``--allow-data-risk``, ``allow_data_risk``); WHMCS never can.
    """

    code = "data_risk"

    def __init__(self, what: str, report, *, how_to_allow: str):
        self.report = report
        super().__init__(f"{what} would leave the customer's data behind: {report.summary()}. {how_to_allow}",
                         **report.as_dict())
