"""The GitLab webhook: a push or tag on the followed ref asks the worker to sync the catalog.

It answers at once (the sync runs in the worker). In this order, and reading the
body only after the first three:

1. 404 unless LIVE_GITLAB_URL and LIVE_GITLAB_WEBHOOK_SECRET are set;
2. 401 unless ``X-Gitlab-Token`` is the secret (compared in constant time);
3. 422 unless ``X-Gitlab-Event`` is a push or tag push;
4. the body (at most :data:`MAX_PAYLOAD_BYTES`, through the service's JSON rules);
5. ignored (200, with the reason): an event of another project than
   LIVE_GITLAB_PROJECT (an id, or a path compared case-insensitively), of another
   ref than LIVE_GITLAB_REF, of the commit the catalog already has, or a delivery
   already handled: GitLab's ``Idempotency-Key`` (the same on retries, GitLab 17.4+)
   and ``X-Gitlab-Event-UUID`` are recorded (:meth:`~app.catalog.catalog.Catalog.request_sync`,
   kept :data:`~app.catalog.catalog.KEEP_DELIVERIES`);
6. otherwise 202: the worker syncs at its next turn.
"""
from __future__ import annotations

import hmac
import re

from apiflask import APIBlueprint
from flask import request

from app.collaborators import catalog, queries, settings
from app.errors import InvalidRequest, NotFound
from app.web.errors import error_response
from app.web.input_guard import body_limit
from app.web.schemas import WebhookOut

bp = APIBlueprint("gitlab_hook", __name__, url_prefix="/hooks", tag="GitLab")
EVENTS = ("Push Hook", "Tag Push Hook")
# Push payloads list up to 20 commits with their changed files: far more than the API's 64 KiB.
MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
# The headers naming a delivery, and the prefix each id is recorded with.
DELIVERY_HEADERS = (("Idempotency-Key", "idempotency"), ("X-Gitlab-Event-UUID", "event"))
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # GitLab sends UUIDs


def _ignored(reason: str):
    return {"sync": "ignored", "reason": reason[:500]}, 200


def project_mismatch(payload: dict, wanted: str) -> str | None:
    """Why the event is not about project ``wanted`` (LIVE_GITLAB_PROJECT), or None when it is.

    ``wanted`` all digits: compared with ``project.id`` (or ``project_id``); otherwise with
    ``project.path_with_namespace``, case-insensitively (GitLab paths are).
    """
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    if wanted.isdigit():
        got = project.get("id", payload.get("project_id"))
        if got is None:
            return "the event names no project id"
        return None if str(got) == wanted else f"the event is for project {got}, not {wanted}"
    got = project.get("path_with_namespace")
    if not isinstance(got, str):
        return "the event names no project path"
    return None if got.casefold() == wanted.casefold() else f"the event is for project {got}, not {wanted}"


def delivery_ids() -> list[str]:
    """The ids this request's delivery is recorded under; raises InvalidRequest for a malformed header."""
    ids = []
    for header, kind in DELIVERY_HEADERS:
        value = request.headers.get(header, "").strip()
        if not value:
            continue
        if not DELIVERY_ID.match(value):
            raise InvalidRequest(f"{header} must be a delivery id of at most 128 letters, digits and ._:-")
        ids.append(f"{kind}:{value.lower()}")
    return ids


@bp.post("/gitlab")
@body_limit(MAX_PAYLOAD_BYTES)
@bp.output(WebhookOut)
@bp.doc(summary="GitLab push and tag events (X-Gitlab-Token must match LIVE_GITLAB_WEBHOOK_SECRET)",
        responses={202: "Sync requested", 200: "Ignored: another project, ref or the current commit, or a replay",
                   400: "Malformed JSON", 401: "Missing or wrong X-Gitlab-Token", 404: "Webhook not configured",
                   413: "Payload over 2 MiB", 422: "Not a push or tag event"})
def gitlab_webhook():
    if not settings.gitlab_url or not settings.gitlab_webhook_secret:
        raise NotFound("the GitLab webhook is not configured (LIVE_GITLAB_URL and LIVE_GITLAB_WEBHOOK_SECRET)")
    supplied = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(supplied.encode(), settings.gitlab_webhook_secret.encode()):
        return error_response(401, "missing or wrong X-Gitlab-Token")
    event = request.headers.get("X-Gitlab-Event", "")
    if event not in EVENTS:
        raise InvalidRequest(f"unsupported X-Gitlab-Event {event!r} (expected {' or '.join(EVENTS)})")
    ids = delivery_ids()
    payload = request.get_json()  # authenticated: now the body is read, with the route's limit and the JSON rules
    if not isinstance(payload, dict):
        raise InvalidRequest("the event is not a JSON object")
    ref = payload.get("ref")
    if not isinstance(ref, str):  # not a push or tag event at all: refused, whichever project it names
        raise InvalidRequest("the event has no ref")
    mismatch = project_mismatch(payload, settings.gitlab_project)
    if mismatch:
        return _ignored(mismatch)
    followed = settings.gitlab_ref
    if ref not in (followed, f"refs/heads/{followed}", f"refs/tags/{followed}"):
        return _ignored(f"{ref} is not the followed ref {followed}")
    head = payload.get("checkout_sha") or payload.get("after")
    current = queries.catalog_status().commit
    if isinstance(head, str) and current and head.lower() == current.lower():
        return _ignored(f"the catalog is already at commit {current[:12]}")
    if not catalog.request_sync(ids):
        return _ignored("already delivered")
    return {"sync": "requested", "reason": f"{event} on {ref}"}, 202
