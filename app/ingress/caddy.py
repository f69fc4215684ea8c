"""The Caddy adapter: writes the orders' routes into a running Caddy 2 through its admin API.

The one module that talks to Caddy (with ``requests``); it never writes a file, reloads, or shells out.
Caddy's admin API (caddyserver.com/docs/api) edits its JSON configuration in place: ``GET /config/<path>``
reads, ``POST`` sets a key (or appends to an array), ``PUT .../<index>`` inserts into an array, ``PATCH``
replaces an existing value, ``DELETE`` removes; ``/id/<@id>`` addresses an object by its ``@id``.

**What the bridge owns** (everything else in Caddy's configuration is left as it is):

- the HTTP server ``live-<deployment>`` (``apps.http.servers``): it listens on the HTTPS port (the HTTP
  port with ``LIVE_TLS=off``); its routes are one per order that is not terminated (``@id``
  ``live-<deployment>-order-<id>``, matching the order's hostname) and a last one,
  ``live-<deployment>-unknown-host``, that answers 404;
- with TLS, the server ``live-<deployment>-redirect`` on the HTTP port, which redirects to HTTPS;
- with TLS, the automation policy ``live-<deployment>-tls`` (``apps.tls.automation.policies``): on-demand
  certificates for ``*.<base domain>`` and the orders' custom domains, issued by ACME or by the internal CA
  ``live`` (``apps.pki.certificate_authorities.live``, never installed into the system's trust store);
  and the on-demand ``ask`` URL (``apps.tls.automation.on_demand.ask``; Caddy 2.6 has one for all
  policies), so Caddy asks the bridge before it issues a certificate.

One route change is one small call (``PATCH /id/<@id>``, or ``PUT`` at index 0 of the routes for a new
order, so the 404 route stays last). :meth:`CaddyIngress.sync` compares Caddy's live configuration with the
desired one and repairs any difference, in one call when Caddy lost it all (a restart with an empty
configuration). Caddy answers each change only once the new configuration is running.

Errors of ``requests`` and Caddy's refusals become :class:`app.errors.IngressUnavailable` here.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from app.errors import IngressUnavailable
from app.ingress.pages import PREPARING_RETRY_AFTER, preparing_page, suspended_page, unknown_site_page
from app.ingress.routes import Route, RouteMode, RouteTable

log = logging.getLogger(__name__)

#: The id of Caddy's internal certificate authority the bridge's policy uses with ``LIVE_TLS=internal``
#: (its root certificate: ``<Caddy data dir>/pki/authorities/live/root.crt``).
INTERNAL_CA = "live"
#: Above this many routes to change, :meth:`CaddyIngress.sync` replaces the server's routes in one call
#: (Caddy applies every change as a new configuration: one call is cheaper than many).
BULK_THRESHOLD = 10
_HTML = {"Content-Type": ["text/html; charset=utf-8"], "Cache-Control": ["no-store"]}


@dataclass(frozen=True)
class CaddySettings:
    """Where Caddy is and what the bridge's part of it looks like (``LIVE_*`` settings, docs/OPERATIONS.md).

    ``tls`` is ``acme``, ``internal`` or ``off``; ``bind`` the host address to listen on (``""``: every
    interface); ``ask_url`` how Caddy reaches the bridge's ``/ingress/v1/ask``.
    """

    admin_url: str
    deployment: str = "live"
    base_domain: str = "localhost"
    tls: str = "acme"
    acme_email: str = ""
    bind: str = ""
    http_port: int = 80
    https_port: int = 443
    ask_url: str = "http://127.0.0.1:8000/ingress/v1/ask"
    billing_url: str = ""


@dataclass
class SyncReport:
    """What :meth:`CaddyIngress.sync` changed: counts of routes ``created``, ``updated``, ``removed`` and
    ``unchanged``, and the other objects it wrote (``others``: e.g. ``["server", "tls policy"]``)."""

    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    others: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed or self.others)


class CaddyIngress(RouteTable):
    """The bridge's part of one Caddy's configuration, edited through the admin API at ``settings.admin_url``.

    Not thread-safe by itself: one writer at a time (:class:`app.ingress.service.IngressService` holds a
    lock). Timeouts are requests' ``(connect, read)`` in seconds: ``timeout`` for one order's change and
    :meth:`check` (Caddy hung must not hold an operation or ``/readyz`` for long), ``sync_timeout`` for a
    :meth:`sync` (which may rewrite thousands of routes in one call).
    """

    def __init__(self, settings: CaddySettings, *, timeout: tuple[float, float] = (0.5, 2.0),
                 sync_timeout: tuple[float, float] = (1.0, 60.0), session: requests.Session | None = None):
        self.settings = settings
        self.admin = settings.admin_url.rstrip("/")
        self.timeout = timeout
        self.sync_timeout = sync_timeout
        self._timeout = timeout  # of the calls being made: sync_timeout during a sync
        self.http = session or requests.Session()
        prefix = f"live-{settings.deployment}"
        self.server_name = prefix
        self.redirect_server_name = f"{prefix}-redirect"
        self.fallback_id = f"{prefix}-unknown-host"
        self.policy_id = f"{prefix}-tls"
        self._route_prefix = f"{prefix}-order-"

    @property
    def tls(self) -> bool:
        return self.settings.tls != "off"

    def route_id(self, order_id: int) -> str:
        """``live-<deployment>-order-<id>``: the ``@id`` of order ``order_id``'s route."""
        return f"{self._route_prefix}{order_id}"

    # -- the JSON of the bridge's objects (what Caddy must hold) -------------------------------------
    def route_json(self, route: Route) -> dict[str, Any]:
        """The Caddy route of ``route``: match the hostname, then proxy each path, or answer a page."""
        if route.mode is RouteMode.PROXY:
            paths = []
            for path in route.paths:
                handler = (_proxy(path.upstream) if path.upstream
                           else _page(503, preparing_page(route.hostname), retry_after=PREPARING_RETRY_AFTER))
                entry: dict[str, Any] = {"handle": [handler]}
                if path.path != "/":
                    entry["match"] = [{"path": [path.path, path.path + "/*"]}]
                paths.append(entry)
            if not any(path.path == "/" for path in route.paths):
                paths.append({"handle": [_page(404, unknown_site_page())]})
            handle = [{"handler": "subroute", "routes": paths}]
        elif route.mode is RouteMode.SUSPENDED:
            handle = [_page(503, suspended_page(route.hostname, self.settings.billing_url))]
        else:
            handle = [_page(503, preparing_page(route.hostname), retry_after=PREPARING_RETRY_AFTER)]
        # A fully qualified Host (``acme.geocat.live.``) is the same name (RFC 1034, section 3.1).
        return {"@id": self.route_id(route.order_id), "match": [{"host": [route.hostname, route.hostname + "."]}],
                "handle": handle, "terminal": True}

    def fallback_json(self) -> dict[str, Any]:
        """The last route: any other hostname gets 404 (never an order's content)."""
        return {"@id": self.fallback_id, "handle": [_page(404, unknown_site_page())], "terminal": True}

    def server_json(self, routes: Iterable[Route]) -> dict[str, Any]:
        """The bridge's HTTP server with ``routes`` (then the 404 route)."""
        server: dict[str, Any] = {
            "listen": [self._listen(self.settings.https_port if self.tls else self.settings.http_port)],
            "routes": [self.route_json(route) for route in routes] + [self.fallback_json()],
        }
        if self.tls:
            # Listening on a port other than Caddy's https_port, the server has TLS only when asked; the
            # redirect from HTTP is the bridge's own server (below), on the port the bridge was given.
            # Certificates come from the bridge's on-demand policy alone: Caddy's automatic HTTPS would otherwise
            # manage every hostname of the routes itself, for names that cannot have public certificates
            # (.test, .local, localhost) with its default CA "local", without asking the bridge, and installing
            # that CA's root into the host's trust store (caddyserver.com/docs/automatic-https).
            server["tls_connection_policies"] = [{}]
            server["automatic_https"] = {"disable_redirects": True, "disable_certificates": True}
            # The Host header must name the TLS handshake's server name: one customer's certificate never
            # fronts a request for another customer's hostname.
            server["strict_sni_host"] = True
        else:
            server["automatic_https"] = {"disable": True}
        return server

    def redirect_server_json(self) -> dict[str, Any]:
        """With TLS: the server on the HTTP port that sends every request to the same URL over HTTPS (308)."""
        port = "" if self.settings.https_port == 443 else f":{self.settings.https_port}"
        location = "https://{http.request.host}" + port + "{http.request.uri}"
        return {"listen": [self._listen(self.settings.http_port)], "automatic_https": {"disable": True},
                "routes": [{"handle": [{"handler": "static_response", "status_code": 308,
                                        "headers": {"Location": [location]}}]}]}

    def policy_json(self, custom_domains: Iterable[str]) -> dict[str, Any]:
        """The TLS automation policy: on-demand certificates for ``*.<base domain>`` and ``custom_domains``."""
        if self.settings.tls == "internal":
            issuer: dict[str, Any] = {"module": "internal", "ca": INTERNAL_CA}
        else:
            issuer = {"module": "acme"}
            if self.settings.acme_email:
                issuer["email"] = self.settings.acme_email
        subjects = [f"*.{self.settings.base_domain}", *sorted(set(custom_domains))]
        return {"@id": self.policy_id, "subjects": subjects, "issuers": [issuer], "on_demand": True}

    def _listen(self, port: int) -> str:
        host = self.settings.bind
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        return f"{host}:{port}"

    # -- one order ------------------------------------------------------------------------------
    def put_route(self, route: Route) -> None:
        """Make Caddy hold ``route``: replace the order's route, or insert it (before the 404 route).

        When the bridge's server is missing (Caddy restarted empty), nothing is written: the next
        :meth:`sync` builds it with every route. Raises IngressUnavailable.
        """
        body = self.route_json(route)
        if self._call("PATCH", f"/id/{body['@id']}", body, missing_ok=True) is not None:
            return
        # A new order. PUT would make missing parents as objects (and Caddy then refuses the configuration).
        if not self.check():
            raise IngressUnavailable(f"Caddy has no server {self.server_name} yet: the resync creates it")
        self._call("PUT", f"/config/apps/http/servers/{self.server_name}/routes/0", body)

    def remove_route(self, order_id: int) -> None:
        """Remove order ``order_id``'s route; nothing to do when it is not there. Raises IngressUnavailable."""
        self._call("DELETE", f"/id/{self.route_id(order_id)}", missing_ok=True)

    def set_custom_domains(self, domains: Iterable[str]) -> None:
        """Make the TLS policy's subjects ``*.<base domain>`` plus ``domains`` (nothing without TLS).
        Raises IngressUnavailable."""
        if self.tls:
            subjects = self.policy_json(domains)["subjects"]
            self._call("PATCH", f"/id/{self.policy_id}/subjects", subjects)

    # -- everything -----------------------------------------------------------------------------
    def check(self) -> bool:
        """Whether Caddy answers and holds the bridge's server. Raises IngressUnavailable when it does not answer."""
        return self._get(f"/config/apps/http/servers/{self.server_name}/listen") is not None

    def sync(self, routes: Iterable[Route], custom_domains: Iterable[str]) -> SyncReport:
        """Compare Caddy's live configuration with ``routes`` and ``custom_domains`` and repair every difference.

        Reads ``/config/apps`` once, then writes only what differs: a missing server (with all its routes)
        in one call, each differing route in one call (or all routes in one call above
        :data:`BULK_THRESHOLD`), the redirect server, the TLS policy, the ``ask`` URL and the internal CA.
        Raises IngressUnavailable; a later sync resumes where this one stopped.
        """
        self._timeout = self.sync_timeout
        try:
            return self._sync(list(routes), custom_domains)
        finally:
            self._timeout = self.timeout

    def _sync(self, routes: list[Route], custom_domains: Iterable[str]) -> SyncReport:
        report = SyncReport()
        apps = self._get("/config/apps")
        if apps is not None and not isinstance(apps, dict):
            raise IngressUnavailable("Caddy's configuration has a non-object apps")
        apps = apps or {}
        if self.tls:
            self._sync_tls(apps, custom_domains, report)
        servers = _dig(apps, "http", "servers") or {}
        self._sync_redirect(apps, servers, report)
        server = servers.get(self.server_name)
        wanted = self.server_json(routes)
        if not isinstance(server, dict):
            self._set(apps, ("http", "servers", self.server_name), wanted)
            report.others.append("server")
            report.created = len(routes)
            return report
        if {k: v for k, v in server.items() if k != "routes"} != {k: v for k, v in wanted.items() if k != "routes"}:
            self._call("PATCH", f"/config/apps/http/servers/{self.server_name}", wanted)
            report.others.append("server")
            report.updated = len(routes)
            return report
        self._sync_routes(server.get("routes") or [], wanted["routes"], report)
        return report

    def _sync_routes(self, live: list, wanted: list[dict[str, Any]], report: SyncReport) -> None:
        ids = [route.get("@id") if isinstance(route, dict) else None for route in live]
        by_id = {rid: route for rid, route in zip(ids, live) if rid}
        path = f"/config/apps/http/servers/{self.server_name}/routes"
        # The 404 route must be last, every route have an @id of ours, and no @id appear twice; otherwise
        # the list is rewritten whole (Caddy accepts duplicate @ids and then serves one of them).
        sound = (ids and ids[-1] == self.fallback_id and by_id[self.fallback_id] == wanted[-1]
                 and len(set(ids)) == len(ids) and all(rid and rid.startswith(self._route_prefix) for rid in ids[:-1]))
        want_ids = {route["@id"] for route in wanted[:-1]}
        stale = [rid for rid in ids[:-1] if rid not in want_ids] if sound else []
        missing = [route for route in wanted[:-1] if route["@id"] not in by_id]
        differing = [route for route in wanted[:-1] if route["@id"] in by_id and by_id[route["@id"]] != route]
        report.unchanged = len(wanted) - 1 - len(missing) - len(differing)
        if not sound or len(stale) + len(missing) + len(differing) > BULK_THRESHOLD:
            self._call("PATCH", path, wanted)
            report.created, report.updated, report.removed = len(missing), len(differing), len(stale)
            if not sound:
                report.others.append("routes rewritten")
            return
        for rid in stale:
            self._call("DELETE", f"/id/{rid}", missing_ok=True)
            report.removed += 1
        for route in differing:
            self._call("PATCH", f"/id/{route['@id']}", route)
            report.updated += 1
        for route in missing:
            self._call("PUT", f"{path}/0", route)
            report.created += 1

    def _sync_redirect(self, apps: dict, servers: Mapping[str, Any], report: SyncReport) -> None:
        live = servers.get(self.redirect_server_name)
        if not self.tls:
            if live is not None:
                self._call("DELETE", f"/config/apps/http/servers/{self.redirect_server_name}", missing_ok=True)
                report.others.append("redirect server removed")
            return
        wanted = self.redirect_server_json()
        if live != wanted:
            self._set(apps, ("http", "servers", self.redirect_server_name), wanted)
            report.others.append("redirect server")

    def _sync_tls(self, apps: dict, custom_domains: Iterable[str], report: SyncReport) -> None:
        if self.settings.tls == "internal":
            ca = _dig(apps, "pki", "certificate_authorities", INTERNAL_CA)
            if not isinstance(ca, dict) or ca.get("install_trust") is not False:
                self._set(apps, ("pki", "certificate_authorities", INTERNAL_CA), {"install_trust": False})
                report.others.append("internal CA")
        on_demand = _dig(apps, "tls", "automation", "on_demand")
        if not isinstance(on_demand, dict) or on_demand.get("ask") != self.settings.ask_url:
            # Only the ask key: rate_limit and the rest stay as the operator set them (removing a
            # rate_limit panics Caddy 2.6).
            self._set(apps, ("tls", "automation", "on_demand", "ask"), self.settings.ask_url)
            report.others.append("ask URL")
        wanted = self.policy_json(custom_domains)
        policies = _dig(apps, "tls", "automation", "policies")
        if not isinstance(policies, list):
            self._set(apps, ("tls", "automation", "policies"), [wanted])
            report.others.append("tls policy")
            return
        ours = [i for i, policy in enumerate(policies) if isinstance(policy, dict) and policy.get("@id") == self.policy_id]
        if ours == [0] and policies[0] == wanted:
            return
        # Missing, changed, repeated or not first (Caddy uses the first policy whose subjects match): remove
        # every copy, then put one at the front, before the operator's own policies.
        for _ in ours:
            self._call("DELETE", f"/id/{self.policy_id}", missing_ok=True)
        if len(policies) > len(ours):
            self._call("PUT", "/config/apps/tls/automation/policies/0", wanted)
        else:
            self._call("POST", "/config/apps/tls/automation/policies", wanted)
        report.others.append("tls policy")

    # -- the admin API ---------------------------------------------------------------------------
    def _set(self, apps: dict, keys: tuple[str, ...], value: Any) -> None:
        """Set ``apps.<keys...>`` to ``value``, creating the missing parent objects (one call).

        ``apps`` is the configuration as last read (it is updated, so later calls see the parents).
        """
        node: Any = apps
        depth = 0
        while depth < len(keys) - 1 and isinstance(node, dict) and isinstance(node.get(keys[depth]), dict):
            node = node[keys[depth]]
            depth += 1
        for key in reversed(keys[depth + 1:]):
            value = {key: value}
        parent = "/config/apps/" + "/".join(keys[:depth])
        if not apps and depth == 0:  # no apps at all (an empty Caddy): create the apps object
            root = self._get("/config/")
            if root is None:
                self._call("POST", "/config/", {"apps": {keys[0]: value}})
            else:
                self._call("POST", "/config/apps", {keys[0]: value})
        else:
            self._call("POST", f"{parent.rstrip('/')}/{keys[depth]}", value)
        node = apps
        for key in keys[:depth]:
            node = node[key]
        node[keys[depth]] = value

    def _get(self, path: str) -> Any:
        """The JSON at ``path``; None when it is not there (Caddy answers ``null``, or 400 "invalid traversal
        path" when a parent object is missing too)."""
        response = self._call("GET", path, missing_ok=True)
        return response.json() if response is not None and response.content else None

    def _call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> requests.Response | None:
        """One admin-API request; ``None`` for a 404 with ``missing_ok`` (an unknown ``@id``).

        Raises IngressUnavailable when Caddy cannot be reached or refuses (with its error text, which is
        for operators only: it names the configuration path).
        """
        url = self.admin + path
        try:
            # Connection: close, because Caddy restarts its admin server with each new configuration and
            # resets the connections kept alive to the old one.
            response = self.http.request(method, url, json=body if method not in ("GET", "DELETE") else None,
                                         headers={"Connection": "close"}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise IngressUnavailable(f"Caddy's admin API at {self.admin} is unreachable: {exc}",
                                     unreachable=True) from None
        if missing_ok and (response.status_code == 404 or (
                response.status_code == 400 and "invalid traversal path" in response.text)):
            return None
        if response.status_code >= 400:
            text = response.text.strip()[:500]
            raise IngressUnavailable(f"Caddy refused {method} {path}: HTTP {response.status_code}: {text}")
        return response


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _proxy(upstream: str) -> dict[str, Any]:
    """A reverse proxy to ``host:port``. Caddy passes the path unchanged and sets X-Forwarded-For,
    X-Forwarded-Proto and X-Forwarded-Host itself, replacing what a client sent (no trusted proxies)."""
    return {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}


def _page(status: int, body: str, *, retry_after: int | None = None) -> dict[str, Any]:
    headers = dict(_HTML)
    if retry_after:
        headers["Retry-After"] = [str(retry_after)]
    return {"handler": "static_response", "status_code": status, "headers": headers, "body": body}
