"""Which data a change of stack definition leaves behind (issue 9, item 5)."""
from __future__ import annotations

from app.compose.parse import parse_stack
from app.stacks.data_risk import data_risks

PG = "/var/lib/postgresql/data"


def stack(services: dict, volumes: tuple[str, ...]) -> object:
    compose = {"services": {name: {"image": "postgres:17", **body} for name, body in services.items()},
               "volumes": {name: {} for name in volumes}}
    return parse_stack(compose)


BEFORE = stack({"db": {"volumes": [f"pgdata:{PG}"]}, "app": {"volumes": ["files:/srv"]}}, ("pgdata", "files"))


def test_nothing_changes_when_every_volume_stays_at_its_path():
    after = stack({"db": {"volumes": [f"pgdata:{PG}"], "environment": {"X": "1"}}, "app": {"volumes": ["files:/srv"]}},
                  ("pgdata", "files"))
    report = data_risks(BEFORE, after)
    assert not report.detaches_data and report.as_dict() == {"risks": [], "left_behind": [], "new_volumes": []}


def test_a_renamed_volume_is_left_behind_and_the_new_one_is_empty():
    after = stack({"db": {"volumes": [f"db-data:{PG}"]}, "app": {"volumes": ["files:/srv"]}}, ("db-data", "files"))
    report = data_risks(BEFORE, after)
    assert report.left_behind == ["pgdata"] and report.new_volumes == ["db-data"]
    assert f"service db: {PG} moves from volume pgdata to volume db-data (new, empty)" in report.risks
    assert any(r.startswith("volume pgdata is left behind") for r in report.risks)


def test_a_removed_volume_is_left_behind():
    after = stack({"db": {"volumes": [f"pgdata:{PG}"]}, "app": {}}, ("pgdata",))
    report = data_risks(BEFORE, after)
    assert report.left_behind == ["files"] and report.new_volumes == []
    assert "service app no longer mounts volume files at /srv" in report.risks


def test_a_removed_service_leaves_its_volume_behind():
    after = stack({"app": {"volumes": ["files:/srv"]}}, ("pgdata", "files"))
    report = data_risks(BEFORE, after)
    assert report.left_behind == ["pgdata"]
    assert f"service db is removed or renamed, and no service mounts its volume pgdata at {PG} any more" \
        in report.risks


def test_a_renamed_service_that_keeps_the_mount_keeps_its_data():
    after = stack({"database": {"volumes": [f"pgdata:{PG}"]}, "app": {"volumes": ["files:/srv"]}}, ("pgdata", "files"))
    assert not data_risks(BEFORE, after).detaches_data


def test_a_volume_mounted_at_another_path_is_a_risk():
    after = stack({"db": {"volumes": ["pgdata:/var/lib/postgresql"]}, "app": {"volumes": ["files:/srv"]}},
                  ("pgdata", "files"))
    report = data_risks(BEFORE, after)
    assert report.left_behind == [] and report.new_volumes == []
    assert report.risks == [f"service db: volume pgdata moves from {PG} to /var/lib/postgresql: the service no "
                            f"longer finds its data at {PG}"]


def test_two_services_swapping_volumes_is_a_risk_for_both():
    before = stack({"a": {"volumes": ["one:/data"]}, "b": {"volumes": ["two:/data"]}}, ("one", "two"))
    after = stack({"a": {"volumes": ["two:/data"]}, "b": {"volumes": ["one:/data"]}}, ("one", "two"))
    report = data_risks(before, after)
    assert report.left_behind == [] and len(report.risks) == 2
    assert all("another volume of the order" in risk for risk in report.risks)


def test_a_trailing_slash_is_the_same_path():
    after = stack({"db": {"volumes": [f"pgdata:{PG}/"]}, "app": {"volumes": ["files:/srv/"]}}, ("pgdata", "files"))
    assert not data_risks(BEFORE, after).detaches_data


def test_a_new_volume_alone_is_no_risk():
    after = stack({"db": {"volumes": [f"pgdata:{PG}"]}, "app": {"volumes": ["files:/srv", "cache:/cache"]}},
                  ("pgdata", "files", "cache"))
    report = data_risks(BEFORE, after)
    assert not report.detaches_data and report.new_volumes == ["cache"]
