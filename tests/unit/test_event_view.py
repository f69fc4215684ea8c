"""What callers see of an event: archive paths and error details are for staff (docs/API.md, "Who sees what")."""
from __future__ import annotations

import datetime as dt

from app.models import Event
from app.presenters import PRIVATE_EVENT_DATA, event_view


def archived_event() -> Event:
    return Event(id=7, order_id=3, operation_id=9, kind="order.archived", message="2 volume(s) archived", actor="whmcs",
                 created_at=dt.datetime(2026, 12, 1, 4, 0, 0),
                 data={"archives": [{"volume": "live-acme_db", "path": "/srv/backups/acme/x-db.tar", "bytes": 10240},
                                    {"volume": "live-acme_web", "path": "/srv/backups/acme/x-web.tar", "bytes": 512}],
                       PRIVATE_EVENT_DATA: "cannot write /srv/backups: ENOSPC"})


def test_read_callers_see_which_volumes_were_archived_but_not_where():
    view = event_view(archived_event())
    assert view["data"] == {"archives": [{"volume": "live-acme_db", "bytes": 10240},
                                         {"volume": "live-acme_web", "bytes": 512}]}
    assert "/srv/backups" not in repr(view)


def test_staff_see_the_paths_and_the_detail():
    view = event_view(archived_event(), include_private=True)
    assert [archive["path"] for archive in view["data"]["archives"]] == ["/srv/backups/acme/x-db.tar",
                                                                         "/srv/backups/acme/x-web.tar"]
    assert view["data"][PRIVATE_EVENT_DATA] == "cannot write /srv/backups: ENOSPC"


def test_the_stored_event_is_not_changed_by_a_view():
    event = archived_event()
    event_view(event)
    assert event.data["archives"][0]["path"] == "/srv/backups/acme/x-db.tar"
