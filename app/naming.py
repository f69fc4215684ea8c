"""Instance identifiers and hostnames derived from what an order gives.

An instance identifier names the order's Docker objects (``<deployment>-<instance>_…``, see
:mod:`app.stacks.project`) and its default hostname, so it must be a valid Docker name and DNS label:
lowercase ``[a-z][a-z0-9-]*``, at most :data:`MAX_INSTANCE_LENGTH` characters.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Callable, Iterable

import idna

from app.errors import NamingError

MAX_INSTANCE_LENGTH = 30
INSTANCE_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


# Letters that NFKD does not decompose into ASCII.
_TRANSLITERATE = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o",
                                "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "þ": "th", "Þ": "th", "ı": "i"})


def slugify_instance(text: str) -> str:
    """Best-effort identifier from free text; '' when nothing usable remains."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if slug and not slug[0].isalpha():
        slug = f"i-{slug}"
    return slug[:MAX_INSTANCE_LENGTH].rstrip("-")


def validate_instance(instance: str) -> str:
    if not instance or len(instance) > MAX_INSTANCE_LENGTH or not INSTANCE_RE.fullmatch(instance) or "--" in instance:
        raise NamingError(
            f"invalid instance identifier {instance!r}: use lowercase letters, digits and single '-', "
            f"starting with a letter, at most {MAX_INSTANCE_LENGTH} characters"
        )
    return instance


def derive_instance(candidates: Iterable[str | None], is_taken: Callable[[str], bool], fallback: str) -> str:
    """The first usable candidate (username, domain, ...) made unique with a numeric suffix."""
    base = next((slug for slug in (slugify_instance(c or "") for c in candidates) if slug), "") or slugify_instance(fallback)
    if not base:
        raise NamingError(f"cannot derive an instance identifier from {fallback!r}")
    if not is_taken(base):
        return base
    for number in range(2, 10_000):
        suffix = f"-{number}"
        candidate = base[: MAX_INSTANCE_LENGTH - len(suffix)].rstrip("-") + suffix
        if not is_taken(candidate):
            return candidate
    raise NamingError(f"no free instance identifier left for {base!r}")


def normalize_hostname(domain: str) -> str:
    """A customer domain as the hostname the order is reached at: lowercase ASCII, no trailing dot.

    A scheme and a path typed around the name are dropped (``https://Maps.Example.org/x`` ->
    ``maps.example.org``); unicode names are IDNA-encoded (IDNA 2008 with UTS 46 mapping, as
    browsers and registries do). Two domains are the same hostname exactly when their normalized
    forms are equal: that is how hostname uniqueness is compared.

    Raises:
        NamingError: not a DNS name of at least two labels: an IP address (v4 or v6, with or
            without brackets or port), a single label, invalid characters, or an all-numeric
            top-level label (RFC 3696, section 2).
    """
    text = domain.strip().lower()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].rstrip(".")
    if _is_ip_address(text):
        raise NamingError(f"invalid domain {domain!r}: an IP address is not a hostname; give a DNS name like "
                          "maps.example.org, or leave the domain empty to use the generated name")
    try:
        # IDNA 2008 / UTS 46 as registries and browsers use it (Python's own codec is IDNA 2003).
        ascii_host = idna.encode(text, uts46=True).decode("ascii") if text else ""
    except (idna.IDNAError, UnicodeError):
        raise NamingError(f"invalid domain {domain!r}: not a valid internationalised domain name") from None
    labels = ascii_host.split(".")
    if not ascii_host or len(ascii_host) > 253 or len(labels) < 2 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise NamingError(f"invalid domain {domain!r}: expected a DNS name like maps.example.org")
    if labels[-1].isdigit():
        raise NamingError(f"invalid domain {domain!r}: the last label of a DNS name cannot be all digits")
    return ascii_host


def _is_ip_address(text: str) -> bool:
    """``192.0.2.10``, ``192.0.2.10:8080``, ``2001:db8::1``, ``[2001:db8::1]:443`` and the like."""
    candidates = {text, text.strip("[]")}
    if text.startswith("[") and "]" in text:
        candidates.add(text[1:text.index("]")])
    if text.count(":") == 1:
        candidates.add(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            continue
        return True
    return False


def hostname_for(instance: str, domain: str | None, base_domain: str) -> str:
    return normalize_hostname(domain) if domain and domain.strip() else f"{instance}.{base_domain}"

