"""Bad products and failed deployments (retries of transient engine errors: tests/unit/test_operations_fake.py)."""
from __future__ import annotations

import pytest

from app.errors import Conflict, InvalidRequest, ProductError
from app.models import Operation, Order, Product
from tests.conftest import write_product

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

MANIFEST = """
name: {name}
plans:
  basic: {{}}
"""

MALICIOUS = {
    "privileged": ("privileged: true", "service evil: privileged"),
    "docker-socket": ("volumes: ['/var/run/docker.sock:/var/run/docker.sock']", "service evil: volumes[0]: the Docker socket"),
    "host-bind": ("volumes: ['/etc:/host-etc:ro']", "service evil: volumes[0]: host path '/etc'"),
    "host-network": ("network_mode: host", "service evil: network_mode"),
    "host-pid": ("pid: host", "service evil: pid"),
    "devices": ("devices: ['/dev/sda:/dev/sda']", "service evil: devices"),
    "cap-sys-admin": ("cap_add: [SYS_ADMIN]", "service evil: cap_add: capability SYS_ADMIN"),
}


def evil_compose(extra: str) -> str:
    return f"""
services:
  evil:
    image: live-test/busybox:latest
    {extra}
"""


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_products_are_listed_invalid_and_never_deployed(live, config_repo, make_customer, case):
    extra, expected = MALICIOUS[case]
    write_product(config_repo, f"evil-{case}", MANIFEST.format(name=case), evil_compose(extra))
    report = live.catalog.sync()
    assert f"evil-{case}" in report.invalid
    errors = Product.get(Product.slug == f"evil-{case}").errors
    assert any(f"product evil-{case}: {expected}" in error for error in errors), errors
    with pytest.raises(ProductError) as refused:
        live.orders.create(service_id=900, customer=make_customer(), product=f"evil-{case}", plan="basic")
    assert expected in str(refused.value)
    assert Order.select().count() == 0


def test_invalid_change_keeps_the_valid_revision(live, config_repo, make_customer):
    folder = config_repo / "products" / "busybox-demo"
    valid_revision = Product.get(Product.slug == "busybox-demo").current_revision_id
    compose = folder / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("init: true", "privileged: true", 1))
    report = live.catalog.sync()
    product = Product.get(Product.slug == "busybox-demo")
    assert "busybox-demo" in report.invalid and not product.valid
    assert product.current_revision_id == valid_revision, "an invalid change never replaces a valid revision"
    assert any("service db: privileged" in e for e in product.errors)


def test_unknown_product_and_plan_are_clear_errors(live, make_customer):
    with pytest.raises(InvalidRequest, match="unknown product 'nope'.*busybox-demo"):  # a 422, not a 404
        live.orders.create(service_id=1, customer=make_customer(), product="nope", plan="small")
    with pytest.raises(InvalidRequest, match="has no plan 'huge'.*large, small"):
        live.orders.create(service_id=1, customer=make_customer(), product="busybox-demo", plan="huge")
    with pytest.raises(InvalidRequest, match="email"):
        live.orders.create(service_id=1, customer=make_customer(email="not-an-address"), product="busybox-demo", plan="small")
    assert Order.select().count() == 0


def test_conflicting_create_for_the_same_service(live, config_repo, make_customer):
    write_product(config_repo, "other", MANIFEST.format(name="Other"), evil_compose("init: true"))
    live.catalog.sync()
    live.orders.create(service_id=3, customer=make_customer(), product="busybox-demo", plan="small")
    with pytest.raises(Conflict, match="service 3 already has an order for product busybox-demo, not other"):
        live.orders.create(service_id=3, customer=make_customer(), product="other", plan="basic")


def test_missing_image_fails_create_and_removes_what_it_made(live, config_repo, settings, deployed_objects, make_customer):
    write_product(config_repo, "ghost", MANIFEST.format(name="Ghost"), """
services:
  db:
    image: live-test/busybox:latest
    init: true
    command: ["sleep", "600"]
    volumes: [data:/data]
  app:
    image: live-test/does-not-exist:1.0
    depends_on: [db]
volumes:
  data:
""")
    live.catalog.sync()
    outcome = live.orders.create(service_id=11, customer=make_customer(), product="ghost", plan="basic", username="ghost")
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(outcome.order.id)
    operation = Operation.get_by_id(outcome.operation.id)
    assert operation.state == "failed"
    assert order.status == "failed"
    assert order.last_error == f"a service image is not available (operation {operation.id})"
    assert "live-test/does-not-exist:1.0" in order.last_error_detail and "not available" in order.last_error_detail
    assert operation.attempts == 1, "a missing image is not retried"
    # What the failed create made is gone, and its volume went into a final backup first.
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)
    assert final.kind == "final" and [a.name for a in final.artefacts] == ["volume.data.tar"]

    # Billing retries the create: same order, a new attempt.
    again = live.orders.create(service_id=11, customer=make_customer(), product="ghost", plan="basic", username="ghost")
    assert again.order.id == order.id and again.operation.id != operation.id


def test_unhealthy_dependency_fails_with_the_reason(live, config_repo, make_customer):
    write_product(config_repo, "sick", MANIFEST.format(name="Sick"), """
services:
  db:
    image: live-test/busybox:latest
    init: true
    command: ["sleep", "600"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 200ms
      retries: 2
  app:
    image: live-test/busybox:latest
    init: true
    command: ["sleep", "600"]
    depends_on:
      db: {condition: service_healthy}
""")
    live.catalog.sync()
    outcome = live.orders.create(service_id=12, customer=make_customer(), product="sick", plan="basic", username="sick")
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "failed"
    assert "db is unhealthy, so app was not started" in order.last_error


def test_an_unknown_product_lists_only_the_products_that_take_orders(live, config_repo, make_customer):
    write_product(config_repo, "Broken Folder", MANIFEST.format(name="Broken"), evil_compose("privileged: true"))
    live.catalog.sync()
    with pytest.raises(InvalidRequest) as refused:
        live.orders.create(service_id=1, customer=make_customer(), product="nope", plan="small")
    message = str(refused.value)
    assert "products: busybox-demo, geonetwork, geoserver-postgis, sdi)" in message
    assert "Broken" not in message, "invalid products are not choices"


def test_a_retried_create_runs_on_the_fixed_revision_of_its_product(live, config_repo, make_customer):
    """After a failed create, the product is fixed: the retry from billing must use the fix (QA finding)."""
    sick = """
services:
  db:
    image: live-test/busybox:latest
    init: true
    command: ["sleep", "600"]
    stop_grace_period: 1s
    healthcheck: {test: ["CMD", "%s"], interval: 200ms, retries: 2}
"""
    write_product(config_repo, "mend", MANIFEST.format(name="Mend"), sick % "false")
    live.catalog.sync()
    outcome = live.orders.create(service_id=14, customer=make_customer(), product="mend", plan="basic")
    live.worker().run_until_idle(timeout=120)
    first = Order.get_by_id(outcome.order.id)
    assert first.status == "failed"

    write_product(config_repo, "mend", MANIFEST.format(name="Mend"), sick % "true")
    live.catalog.sync()
    retried = live.orders.create(service_id=14, customer=make_customer(), product="mend", plan="basic")
    assert retried.message == "provisioning retried"
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(first.id)
    assert order.status == "active", order.last_error_detail
    assert order.revision_id == live.catalog.product("mend").current_revision_id != first.revision_id
