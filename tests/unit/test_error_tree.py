"""One exception tree: every Live error has a documented status and code, and a public text that leaks nothing."""
from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import app
from app.config import PROJECT_ROOT
from app.errors import (
    INTERNAL_PUBLIC,
    CatalogSourceError,
    ImageMissing,
    LiveError,
    NotFound,
    OrderNotFound,
    ProductError,
    EngineUnavailable,
    StackSpecError,
    UpstreamFailed,
    WorkerAlreadyRunning,
)
from app.orders.worker import failure_texts

API_DOC = PROJECT_ROOT / "docs" / "API.md"
# A row of the "Errors" table: | `ClassName` | 404 | `not_found` | ...
ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*(\d{3})\s*\|\s*`(\w+)`\s*\|", re.MULTILINE)
# What an internal error message may hold and a public text never may.
PRIVATE = "pull registry.internal:5000/acme/geoserver:2.24 from http://10.0.0.7:2375/v1.43 for container " \
          "3f2a9c1b7d4e at /var/lib/live/secrets.env: psycopg2.OperationalError: password=s3cret"
PRIVATE_PARTS = ("registry.internal", "10.0.0.7", "2375", "3f2a9c1b7d4e", "/var/lib", "psycopg2", "s3cret", "http://")


def all_live_errors() -> set[type[LiveError]]:
    """Every LiveError subclass defined anywhere under app/ (each module imported first)."""
    for module in pkgutil.walk_packages(app.__path__, prefix="app."):
        importlib.import_module(module.name)
    found, todo = set(), [LiveError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("app.") and cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return found


def documented() -> dict[str, tuple[int, str]]:
    text = API_DOC.read_text()
    section = text[text.index("## Errors"):]
    return {name: (int(status), code) for name, status, code in ROW.findall(section)}


def test_every_project_error_lives_in_app_errors():
    classes = all_live_errors()
    assert len(classes) >= 19
    elsewhere = sorted(f"{cls.__module__}.{cls.__name__}" for cls in classes if cls.__module__ != "app.errors")
    assert elsewhere == [], "define Live errors in app/errors.py (import them where they used to be)"


def test_every_project_exception_is_in_the_documented_table_with_its_status_and_code():
    table = documented()
    for cls in sorted(all_live_errors(), key=lambda c: c.__name__):
        assert cls.__name__ in table, f"{cls.__name__} is missing from the Errors table of docs/API.md"
        assert (cls.http_status, cls.code) == table[cls.__name__], cls.__name__
        assert cls.__doc__, f"{cls.__name__} has no docstring"
    assert set(table) == {cls.__name__ for cls in all_live_errors()}, "the table lists a class that does not exist"


def test_old_import_paths_still_work():
    from app.catalog.gitlab_source import CatalogSourceError as FromSource
    from app.compose.parse import StackSpecError as FromSpec
    from app.orders.worker import WorkerAlreadyRunning as FromWorker
    from app.stacks.deployer import UpstreamFailed as FromDeployer

    assert (FromSource, FromWorker, FromDeployer, FromSpec) == (
        CatalogSourceError, WorkerAlreadyRunning, UpstreamFailed, StackSpecError)


def internal_classes() -> list[type[LiveError]]:
    """Classes that wrap internal systems: their public text is a fixed sentence."""
    return sorted((cls for cls in all_live_errors() if cls.default_public is not None and cls is not ProductError),
                  key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", internal_classes(), ids=lambda c: c.__name__)
def test_internal_errors_never_show_their_detail_publicly(cls):
    error = cls(PRIVATE)
    assert str(error) == error.message == PRIVATE, "the private text stays the message"
    assert error.public == cls.default_public
    assert not any(part in error.public for part in PRIVATE_PARTS), error.public


def test_the_internal_classes_are_those_the_design_names():
    names = {cls.__name__ for cls in internal_classes()}
    assert {"LiveError", "ConfigError", "DatabaseUnavailable", "CatalogSourceError", "EngineUnavailable",
            "EngineOperationError", "ImageMissing", "ArchiveError", "UpstreamFailed", "StackSpecError"} <= names
    assert not names & {"NotFound", "OrderNotFound", "Conflict", "InvalidRequest", "NamingError",
                        "InterpolationError", "HealthCheckFailed", "WorkerAlreadyRunning"}


def test_caller_input_errors_show_their_message_and_a_raiser_may_choose_the_public_text():
    assert NotFound("no order 'acme'").public == "no order 'acme'"
    missing = NotFound("inspect container 3f2a9c1b: No such container", public="an object is missing")
    assert missing.public == "an object is missing" and str(missing) == "inspect container 3f2a9c1b: No such container"


def test_product_errors_show_only_their_headline():
    error = ProductError("evil", ["service evil: volumes[0]: host path '/etc'", "service evil: privileged"])
    assert error.public == "product 'evil' is invalid"
    assert "/etc" in str(error) and error.details == {"product": "evil", "errors": error.errors}
    assert (error.http_status, error.code) == (422, "product_invalid")


def test_order_not_found_is_a_not_found_with_its_own_code():
    assert issubclass(OrderNotFound, NotFound)
    assert (OrderNotFound.http_status, OrderNotFound.code) == (404, "order_not_found")
    assert (NotFound.http_status, NotFound.code) == (404, "not_found")
    assert (StackSpecError.http_status, StackSpecError.code) == (422, "product_invalid")


def test_transient_errors_are_those_a_retry_can_fix():
    assert {cls.__name__ for cls in all_live_errors() if cls.transient} == {
        "EngineUnavailable", "CatalogSourceError", "DatabaseUnavailable", "IngressUnavailable"}


def test_failure_texts_of_an_operation():
    assert failure_texts(7, ImageMissing(f"image x: {PRIVATE}")) == (
        "a service image is not available (operation 7)", f"image x: {PRIVATE}")
    # A message that is public anyway needs no reference.
    assert failure_texts(7, NotFound("no revision abc")) == ("no revision abc", "no revision abc")
    public, detail = failure_texts(8, KeyError(PRIVATE))
    assert public == "internal error in operation 8; the operators have the details"
    assert detail.startswith("KeyError: ") and PRIVATE in detail
    public, detail = failure_texts(9, EngineUnavailable(PRIVATE))
    assert public == "the container platform is unavailable right now (operation 9)" and detail == PRIVATE
    assert failure_texts(10, LiveError(PRIVATE))[0] == f"{INTERNAL_PUBLIC} (operation 10)"
