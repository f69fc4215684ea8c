"""The label and naming contract (app/stacks/project.py): names, selectors, labels read back, and no label key
written anywhere else in app/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.compose.model import StackSpec
from app.compose.parse import RESERVED_LABEL_PREFIX, parse_service, parse_stack
from app.config import PROJECT_ROOT
from app.errors import StackSpecError
from app.stacks import project as contract
from app.stacks.project import (
    LABEL_KEYS,
    Project,
    deployment_selector,
    object_prefix,
    order_id_of,
    order_selector,
    service_of,
)

APP = PROJECT_ROOT / "app"

#: The keys on running containers, networks and volumes: changing one orphans what exists.
STORED_KEYS = {
    "DEPLOYMENT_LABEL": "live.deployment", "ORDER_LABEL": "live.order", "INSTANCE_LABEL": "live.instance",
    "PRODUCT_LABEL": "live.product", "REVISION_LABEL": "live.revision", "SERVICE_LABEL": "live.service",
    "CONFIG_HASH_LABEL": "live.config-hash", "NETWORK_LABEL": "live.network", "VOLUME_LABEL": "live.volume",
    "ROLE_LABEL": "live.role", "REPLACES_LABEL": "live.replaces",
}

#: String constants starting with ``live.`` that are not label keys written by Live.
NOT_LABEL_KEYS = {
    ("app/config.py", "live.db"),  # the SQLite file's name
    ("app/compose/parse.py", "live."),  # RESERVED_LABEL_PREFIX: what a product's labels may not start with
}


def project(deployment: str = "prod", instance: str = "acme", order_id: int = 42) -> Project:
    return Project(order_id=order_id, instance=instance, product="demo", revision="r1",
                   hostname=f"{instance}.example.org", stack=StackSpec(services={}, volumes=[], networks={}),
                   deployment=deployment)


# -- label keys -------------------------------------------------------------------------------

def test_label_keys_are_those_on_running_objects():
    assert {name: getattr(contract, name) for name in STORED_KEYS} == STORED_KEYS
    assert sorted(LABEL_KEYS) == sorted(STORED_KEYS.values())
    assert contract.ARCHIVE_HELPER_ROLE == "archive-helper"


@pytest.mark.parametrize("key", LABEL_KEYS)
def test_a_product_can_set_no_label_key_of_live(key):
    assert key.startswith(RESERVED_LABEL_PREFIX)
    with pytest.raises(StackSpecError, match="prefix is reserved for Live"):
        parse_service("web", {"image": "nginx:1.25", "labels": {key: "forged"}}, {})
    for section in ("networks", "volumes"):
        document = {"services": {"web": {"image": "nginx:1.25"}}, section: {"x": {"labels": {key: "forged"}}}}
        with pytest.raises(StackSpecError, match="prefix is reserved for Live"):
            parse_stack(document)


# -- names ------------------------------------------------------------------------------------

def test_object_names():
    acme = project()
    assert object_prefix("prod", "acme") == acme.prefix == "prod-acme"
    assert acme.container_name("web") == "prod-acme_web"
    assert acme.network_name("default") == "prod-acme_default"
    assert acme.volume_name("db-data") == "prod-acme_db-data"
    assert acme.archive_helper_name == "prod-acme-archive"


def test_two_orders_never_share_a_name():
    # Order shop's service db-main and order shop-db's service main (a '-' after the prefix would clash).
    assert project(instance="shop").container_name("db-main") != project(instance="shop-db").container_name("main")
    assert project(deployment="staging").container_name("web") != project().container_name("web")


# -- selectors --------------------------------------------------------------------------------

def test_selectors():
    assert deployment_selector("prod") == {"live.deployment": "prod"}
    assert order_selector("prod", 42) == project().selector == {"live.deployment": "prod", "live.order": "42"}


@pytest.mark.parametrize("labels", ["base_labels", "archive_helper_labels"])
def test_every_object_of_a_project_is_selected_by_its_selectors_and_no_other_orders(labels):
    made = getattr(project(), labels)()
    assert project().selector.items() <= made.items()
    assert deployment_selector("prod").items() <= made.items()
    assert not project(order_id=43).selector.items() <= made.items()
    assert not project(deployment="staging").selector.items() <= made.items()
    assert not deployment_selector("staging").items() <= made.items()


def test_container_network_and_volume_labels():
    acme = project()
    assert acme.base_labels() == {"live.deployment": "prod", "live.order": "42", "live.instance": "acme",
                                  "live.product": "demo", "live.revision": "r1"}
    assert acme.container_labels("web", "abc") == {**acme.base_labels(), "live.service": "web",
                                                    "live.config-hash": "abc"}
    assert acme.network_labels("back") == {**acme.base_labels(), "live.network": "back"}
    assert acme.volume_labels("data") == {**acme.base_labels(), "live.volume": "data"}
    assert acme.archive_helper_labels() == {**acme.base_labels(), "live.role": "archive-helper"}


# -- reading labels back ----------------------------------------------------------------------

def test_labels_read_back():
    acme = project()
    container = acme.container_labels("web", "abc")
    assert (order_id_of(container), service_of(container)) == (42, "web")
    for labels in (acme.network_labels("back"), acme.volume_labels("data"), acme.archive_helper_labels()):
        assert (order_id_of(labels), service_of(labels)) == (42, None)  # runs no service


@pytest.mark.parametrize("labels", [{}, {"live.order": ""}, {"live.order": "x1"}, {"live.order": "-1"},
                                    {"com.docker.compose.project": "other"}])
def test_labels_of_no_order_read_back_as_none(labels):
    assert order_id_of(labels) is None and service_of(labels) is None


# -- no other module writes a label key ---------------------------------------------------------

def live_literals(source: str) -> list[str]:
    """Every string constant of ``source`` (f-string parts too) that starts with ``live.``."""
    return [node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("live.")]


def test_only_the_contract_writes_label_keys():
    found = []
    for path in sorted(APP.rglob("*.py")):
        where = str(path.relative_to(PROJECT_ROOT))
        if path == Path(contract.__file__):
            continue
        found += [(where, value) for value in live_literals(path.read_text(encoding="utf-8"))
                  if (where, value) not in NOT_LABEL_KEYS]
    assert found == [], "use the constants and helpers of app/stacks/project.py"


def test_the_check_sees_what_it_refuses():
    source = '''
labels = {"live.order": "1"}
labels.get('live.service')
name = f"live.{key}"
doc = "mentions ``live.order`` inside a sentence"
'''
    assert live_literals(source) == ["live.order", "live.service", "live."]
