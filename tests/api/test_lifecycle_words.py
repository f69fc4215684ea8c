"""Lifecycle answers hold the plain words of app/orders/lifecycle.py's enums, byte for byte (issue 11)."""
from __future__ import annotations

import json

from tests.api.conftest import client_payload


def test_answers_hold_the_plain_words(api):
    answer = api.post("/whmcs/v1/services/801/create", client_payload(username="words"))
    assert answer.status_code == 202, answer.json
    text = answer.get_data(as_text=True)
    assert json.loads(text)["operation"]["kind"] == "create"
    for fragment in ('"result":"queued"', '"status":"pending"', '"kind":"create"', '"state":"pending"'):
        assert fragment in text, text
    suspended = api.post("/whmcs/v1/services/801/suspend", {}).get_data(as_text=True)
    assert '"result":"queued"' in suspended and '"kind":"suspend"' in suspended
    listed = api.get("/api/v1/orders?status=pending", scope="read")
    assert listed.status_code == 200 and '"status":"pending"' in listed.get_data(as_text=True)
    refused = api.get("/api/v1/orders?status=paused", scope="read")
    assert refused.status_code == 422
    assert refused.json["error"]["details"]["query"]["status"] == [
        "Must be one of: pending, active, suspended, failed, terminated."]
