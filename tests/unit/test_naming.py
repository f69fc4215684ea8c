"""Instance identifiers and hostnames (app/naming.py)."""
from __future__ import annotations

import re

import pytest

from app.errors import NamingError
from app.naming import (
    MAX_INSTANCE_LENGTH,
    derive_instance,
    hostname_for,
    normalize_hostname,
    slugify_instance,
    validate_instance,
)

SLUG_SHAPE = re.compile(r"^[a-z][a-z0-9-]*$")

NASTY_INPUTS = [
    "",
    " ",
    "\t\n",
    "-",
    "---",
    "___",
    "...",
    "123",
    "0",
    "007 agent",
    "42-",
    "-leading-and-trailing-",
    "a",
    "A",
    "Z9",
    "a" * 100,
    "a" * 29 + "-b",           # truncation lands on the separator
    "a" * 30 + "-b",
    "1" * 40,                   # leading digits get a prefix, then truncated
    "9" * 29 + "x",
    "Ünïcødé Ltd.",
    "Crème Brûlée & Co",
    "Ærøskøbing",
    "straße",
    "İstanbul",
    "ﬁnance",                   # ligature: NFKD gives 'fi'
    "Ⅻ roman",                  # compatibility numeral
    "①②③",
    "東京",
    "שלום עולם",                # RTL Hebrew
    "مرحبا",                    # RTL Arabic
    "\u202eevil\u202c",         # RTL override control characters
    "🎉🎉🎉",
    "party 🎉 time",
    "👩‍👩‍👧",                    # ZWJ sequence
    "a\u0000b",
    "john.doe@example.com",
    "https://maps.example.org/path?q=1",
    "Hello,   World!!!",
    "under_score__double",
    "x" + "-" * 50 + "y",
    "-" * 100,
    "Ünï" * 40,
    "\u0301\u0301",             # only combining marks
]


# -- slugify_instance -------------------------------------------------------------

@pytest.mark.parametrize("text", NASTY_INPUTS)
def test_slugify_always_gives_empty_or_a_valid_identifier(text):
    slug = slugify_instance(text)
    assert isinstance(slug, str)
    if slug:
        assert SLUG_SHAPE.match(slug), slug
        assert not slug.endswith("-")
        assert "--" not in slug
        assert len(slug) <= MAX_INSTANCE_LENGTH
        # Anything slugify produces is accepted by the validator.
        assert validate_instance(slug) == slug


@pytest.mark.parametrize("text", NASTY_INPUTS)
def test_slugify_is_idempotent(text):
    slug = slugify_instance(text)
    assert slugify_instance(slug) == slug


@pytest.mark.parametrize(
    "text, expected",
    [
        ("acme", "acme"),
        ("ACME Corp", "acme-corp"),
        ("  spaced   out  ", "spaced-out"),
        ("Hello,   World!!!", "hello-world"),
        ("under_score__double", "under-score-double"),
        ("john.doe@example.com", "john-doe-example-com"),
        ("Crème Brûlée & Co", "creme-brulee-co"),  # accents decompose to their base letter
        ("Ünïcødé Ltd.", "unicode-ltd"),            # 'ø' has no decomposition: transliterated
        ("Ærøskøbing", "aeroskobing"),
        ("Straße", "strasse"),
        ("Łódź Œuvre", "lodz-oeuvre"),
        ("ﬁnance", "finance"),
        ("-leading-and-trailing-", "leading-and-trailing"),
    ],
)
def test_slugify_examples(text, expected):
    assert slugify_instance(text) == expected


@pytest.mark.parametrize("text", ["", " ", "---", "...", "🎉🎉🎉", "東京", "שלום עולם", "مرحبا", "\u0301\u0301"])
def test_slugify_returns_empty_when_nothing_usable_remains(text):
    assert slugify_instance(text) == ""


@pytest.mark.parametrize("text, expected", [("123", "i-123"), ("0", "i-0"), ("007 agent", "i-007-agent")])
def test_slugify_prefixes_a_leading_digit(text, expected):
    assert slugify_instance(text) == expected


def test_slugify_truncates_to_the_maximum_length():
    assert slugify_instance("a" * 100) == "a" * MAX_INSTANCE_LENGTH
    assert slugify_instance("1" * 40) == "i-" + "1" * (MAX_INSTANCE_LENGTH - 2)


def test_slugify_truncation_does_not_leave_a_trailing_dash():
    # "aaa…a-b": the cut at 30 falls right after the dash.
    assert slugify_instance("a" * 29 + "-b") == "a" * 29


# -- validate_instance ----------------------------------------------------------------

@pytest.mark.parametrize("instance", ["a", "ab", "a1", "a-b", "acme-maps-2", "x" * MAX_INSTANCE_LENGTH, "i-123"])
def test_validate_instance_accepts(instance):
    assert validate_instance(instance) == instance


@pytest.mark.parametrize(
    "instance",
    [
        "",
        "1abc",
        "-abc",
        "abc-",
        "a--b",
        "ABC",
        "Abc",
        "a_b",
        "a.b",
        "a b",
        "é",
        "x" * (MAX_INSTANCE_LENGTH + 1),
        "-",
    ],
)
def test_validate_instance_rejects(instance):
    with pytest.raises(NamingError) as info:
        validate_instance(instance)
    assert repr(instance) in str(info.value)


def test_validate_instance_rejects_trailing_newline():
    with pytest.raises(NamingError):
        validate_instance("abc\n")


# -- derive_instance --------------------------------------------------------------------

def taken(*names: str):
    names_set = set(names)
    return lambda candidate: candidate in names_set


def test_derive_uses_first_usable_candidate():
    assert derive_instance(["Acme Corp", "other"], taken(), "fallback") == "acme-corp"


def test_derive_skips_empty_none_and_unusable_candidates():
    assert derive_instance([None, "", "🎉", "---", "Beta"], taken(), "fallback") == "beta"


def test_derive_falls_back_when_no_candidate_is_usable():
    assert derive_instance([None, "", "東京"], taken(), "Order 17") == "order-17"
    assert derive_instance([], taken(), "customer") == "customer"


def test_derive_fallback_with_leading_digit():
    assert derive_instance([], taken(), "17") == "i-17"


def test_derive_raises_when_fallback_is_unusable_too():
    with pytest.raises(NamingError, match="🎉"):
        derive_instance([None, "東京"], taken(), "🎉")


def test_derive_adds_numeric_suffix_when_taken():
    assert derive_instance(["acme"], taken("acme"), "x") == "acme-2"
    assert derive_instance(["acme"], taken("acme", "acme-2"), "x") == "acme-3"
    assert derive_instance(["acme"], taken("acme", "acme-2", "acme-3"), "x") == "acme-4"


def test_derive_suffix_skips_only_taken_numbers():
    # acme-2 is free even though acme-3 is taken.
    assert derive_instance(["acme"], taken("acme", "acme-3"), "x") == "acme-2"


def test_derive_does_not_try_the_next_candidate_when_the_first_is_taken():
    # The first usable candidate is made unique; later candidates are alternatives only when unusable.
    assert derive_instance(["acme", "beta"], taken("acme"), "x") == "acme-2"


def test_derive_truncates_long_base_to_fit_the_suffix():
    base = "a" * MAX_INSTANCE_LENGTH
    result = derive_instance([base], taken(base), "x")
    assert result == "a" * (MAX_INSTANCE_LENGTH - 2) + "-2"
    assert len(result) == MAX_INSTANCE_LENGTH


def test_derive_truncates_more_for_longer_suffixes():
    base = "b" * MAX_INSTANCE_LENGTH
    taken_names = {base} | {"b" * (MAX_INSTANCE_LENGTH - 2) + f"-{n}" for n in range(2, 10)}
    result = derive_instance([base], lambda c: c in taken_names, "x")
    assert result == "b" * (MAX_INSTANCE_LENGTH - 3) + "-10"
    assert len(result) == MAX_INSTANCE_LENGTH


def test_derive_truncation_never_produces_a_double_dash():
    # Cutting "aaaa…a-bb" for the suffix would end on '-', giving '--2'.
    base = "a" * (MAX_INSTANCE_LENGTH - 3) + "-bb"
    assert len(base) == MAX_INSTANCE_LENGTH
    result = derive_instance([base], taken(base), "x")
    assert "--" not in result
    assert result == "a" * (MAX_INSTANCE_LENGTH - 3) + "-2"
    assert validate_instance(result) == result


@pytest.mark.parametrize("text", NASTY_INPUTS)
def test_derived_identifiers_are_always_valid(text):
    first = derive_instance([text], taken(), "fallback")
    second = derive_instance([text], taken(first), "fallback")
    assert second != first
    for value in (first, second):
        assert validate_instance(value) == value


def test_derive_passes_each_candidate_to_is_taken_in_order():
    asked = []

    def is_taken(candidate):
        asked.append(candidate)
        return len(asked) < 3

    assert derive_instance(["shop"], is_taken, "x") == "shop-3"
    assert asked == ["shop", "shop-2", "shop-3"]


def test_derive_gives_up_when_everything_is_taken():
    with pytest.raises(NamingError, match="no free instance identifier"):
        derive_instance(["acme"], lambda candidate: True, "x")


# -- normalize_hostname ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "domain, expected",
    [
        ("maps.example.org", "maps.example.org"),
        ("Maps.Example.ORG", "maps.example.org"),
        ("  maps.example.org  ", "maps.example.org"),
        ("maps.example.org.", "maps.example.org"),  # fully qualified form
        ("https://maps.example.org", "maps.example.org"),
        ("http://maps.example.org/geoserver/web", "maps.example.org"),
        ("HTTPS://Maps.Example.org/", "maps.example.org"),
        ("maps.example.org/path", "maps.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("https://bücher.example/katalog", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("1.example", "1.example"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_normalize_hostname(domain, expected):
    assert normalize_hostname(domain) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "   ",
        "localhost",               # single label
        "https://localhost/x",
        "example",
        "exa_mple.org",
        "exa mple.org",
        "-bad.example.org",
        "bad-.example.org",
        "a..example.org",
        ".example.org",
        "example.org:8080",
        "user@example.org",
        "example.org?q=1",
        "a" * 64 + ".example",      # label longer than 63
        ".".join(["a" * 60] * 5),   # longer than 253 in total
    ],
)
def test_normalize_hostname_rejects(domain):
    with pytest.raises(NamingError) as info:
        normalize_hostname(domain)
    assert repr(domain) in str(info.value)


@pytest.mark.parametrize(
    "domain",
    ["192.0.2.10", "192.0.2.10.", "https://192.0.2.10/", "192.0.2.10:8080", "2001:db8::1", "[2001:db8::1]",
     "[2001:db8::1]:443", "::1", "http://[::1]:8000/x"],
)
def test_normalize_hostname_refuses_ip_addresses(domain):
    with pytest.raises(NamingError, match="an IP address is not a hostname"):
        normalize_hostname(domain)


@pytest.mark.parametrize("domain", ["1.2.3", "maps.example.123", "10.0.0.1.2.3"])
def test_normalize_hostname_refuses_an_all_numeric_top_level_label(domain):
    with pytest.raises(NamingError, match="all digits"):
        normalize_hostname(domain)


def test_normalize_hostname_rejects_embedded_newline():
    with pytest.raises(NamingError):
        normalize_hostname("a\n.example")


def test_normalize_hostname_uses_idna2008_for_sharp_s():
    assert normalize_hostname("straße.de") == "xn--strae-oqa.de"


# -- hostname_for -----------------------------------------------------

def test_hostname_for_defaults_to_instance_under_base_domain():
    assert hostname_for("acme", None, "geocat.live") == "acme.geocat.live"
    assert hostname_for("acme", "", "geocat.live") == "acme.geocat.live"
    assert hostname_for("acme", "   ", "geocat.live") == "acme.geocat.live"


def test_hostname_for_uses_customer_domain_normalized():
    assert hostname_for("acme", "https://Maps.Acme.com/", "geocat.live") == "maps.acme.com"
    assert hostname_for("acme", "bücher.example", "geocat.live") == "xn--bcher-kva.example"


def test_hostname_for_rejects_bad_customer_domain():
    with pytest.raises(NamingError):
        hostname_for("acme", "localhost", "geocat.live")

