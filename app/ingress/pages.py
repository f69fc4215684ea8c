"""The pages an order's hostname answers while it does not serve its stack (issue 12).

Plain HTML without braces: Caddy's ``static_response`` replaces ``{...}`` placeholders in bodies, and a
page must never show more than it says. Every value written into a page is HTML-escaped.
"""
from __future__ import annotations

import html

#: Seconds a client is asked to wait before trying a service being prepared again (``Retry-After``).
PREPARING_RETRY_AFTER = 30

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto; padding: 0 1em; color: #222">
<h1 style="font-size: 1.5em">{title}</h1>
{paragraphs}
</body></html>
"""


def _page(title: str, *paragraphs: str, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return _PAGE.format(title=html.escape(title), refresh=meta,
                        paragraphs="\n".join(f"<p>{p}</p>" for p in paragraphs))


def preparing_page(hostname: str) -> str:
    """The 503 page of a service being prepared (created, resumed or changed)."""
    return _page("This service is being prepared",
                 f"<strong>{html.escape(hostname)}</strong> is being prepared. It will be available in a few minutes.",
                 "This page reloads by itself.", refresh=PREPARING_RETRY_AFTER)


def suspended_page(hostname: str, billing_url: str = "") -> str:
    """The 503 page of a suspended service; it links to ``billing_url`` (the WHMCS client area) when set."""
    where = (f'Please see <a href="{html.escape(billing_url, quote=True)}">your account</a> or contact billing.'
             if billing_url else "Please contact billing.")
    return _page("This service is suspended", f"<strong>{html.escape(hostname)}</strong> is suspended.", where)


def unknown_site_page() -> str:
    """The 404 page of a hostname the proxy serves no order for (unknown or terminated)."""
    return _page("Site not found", "No service is available at this address.")
