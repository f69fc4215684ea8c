"""A corpus of broken and malicious product definitions: each is refused with a named error."""
from __future__ import annotations

import pytest

from app.catalog.product import load_product
from tests.reliability.corpus import CASES


@pytest.mark.parametrize("name,manifest,compose,expected", CASES, ids=[case[0] for case in CASES])
def test_bad_product_is_refused_with_a_named_error(name, manifest, compose, expected):
    slug = f"bad-{name}"
    product = load_product(slug, manifest, compose)
    assert not product.valid, f"{name} was accepted"
    assert all(error.startswith(f"product {slug}") for error in product.errors), product.errors
    assert any(expected in error for error in product.errors), product.errors
