"""The project's own exceptions.

Errors of external libraries (docker, peewee, yaml, jsonschema) are translated
into these at the adapter boundary, so callers never catch a library's type.
"""


class LiveError(Exception):
    """Base class of every error the bridge raises on purpose."""

    #: Whether retrying the same work later may succeed.
    transient = False

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(LiveError):
    """The service configuration (environment) is invalid."""


class ProductError(LiveError):
    """A product definition is invalid; ``errors`` lists every problem found."""

    def __init__(self, slug: str, errors: list[str]):
        self.slug = slug
        self.errors = list(errors)
        super().__init__(f"product {slug!r} is invalid: " + "; ".join(self.errors), product=slug, errors=self.errors)


class InterpolationError(LiveError):
    """A ``${VAR}`` could not be resolved (undefined variable, bad syntax)."""


class NamingError(LiveError):
    """An instance identifier or hostname cannot be derived from the input."""


class NotFound(LiveError):
    """A requested entity (order, product, operation) does not exist."""


class Conflict(LiveError):
    """The request contradicts the existing state (e.g. another product for the same service)."""


class InvalidRequest(LiveError):
    """The caller asked for something malformed (unknown plan, bad argument)."""


class RuntimeUnavailable(LiveError):
    """The container engine cannot be reached or answered with a server error."""

    transient = True


class RuntimeOperationError(LiveError):
    """The container engine refused an operation; retrying the same call will not help."""


class ImageMissing(RuntimeOperationError):
    """An image is not present locally and could not be pulled."""


class HealthCheckFailed(LiveError):
    """A service did not become healthy (or exited) within its time limit."""


class ArchiveError(LiveError):
    """A volume could not be archived; the volume is kept."""
