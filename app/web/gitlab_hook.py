"""The GitLab webhook: a push or tag on the followed ref asks the worker to sync the catalog.

It answers at once (the sync runs in the worker), and checks ``X-Gitlab-Token``
against LIVE_GITLAB_WEBHOOK_SECRET in constant time.
"""
from __future__ import annotations

import hmac

from apiflask import APIBlueprint
from flask import current_app, request

from app.errors import InvalidRequest, NotFound
from app.web.errors import error_response
from app.web.schemas import WebhookOut

bp = APIBlueprint("gitlab_hook", __name__, url_prefix="/hooks", tag="GitLab")
EVENTS = ("Push Hook", "Tag Push Hook")
MAX_PAYLOAD_BYTES = 2 * 1024 * 1024  # push payloads list commits and can exceed the API's 64 KiB


@bp.post("/gitlab")
@bp.output(WebhookOut)
@bp.doc(summary="GitLab push and tag events (X-Gitlab-Token must match LIVE_GITLAB_WEBHOOK_SECRET)",
        responses={202: "Sync requested", 401: "Missing or wrong X-Gitlab-Token", 404: "Webhook not configured",
                   422: "Not a push or tag event"})
def gitlab_webhook():
    settings = current_app.extensions["live"].settings
    if not settings.gitlab_url or not settings.gitlab_webhook_secret:
        raise NotFound("the GitLab webhook is not configured (LIVE_GITLAB_URL and LIVE_GITLAB_WEBHOOK_SECRET)")
    supplied = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(supplied.encode(), settings.gitlab_webhook_secret.encode()):
        return error_response(401, "missing or wrong X-Gitlab-Token")
    event = request.headers.get("X-Gitlab-Event", "")
    if event not in EVENTS:
        raise InvalidRequest(f"unsupported X-Gitlab-Event {event!r} (expected {' or '.join(EVENTS)})")
    request.max_content_length = MAX_PAYLOAD_BYTES
    payload = request.get_json(silent=True)
    ref = payload.get("ref") if isinstance(payload, dict) else None
    if not isinstance(ref, str):
        raise InvalidRequest("the event has no ref")
    followed = settings.gitlab_ref
    if ref not in (followed, f"refs/heads/{followed}", f"refs/tags/{followed}"):
        return {"sync": "ignored", "reason": f"{ref} is not the followed ref {followed}"}, 200
    current_app.extensions["live"].catalog.request_sync()
    return {"sync": "requested", "reason": f"{event} on {ref}"}, 202
