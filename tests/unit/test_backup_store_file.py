"""The backup store in a folder (app/backups/file_store.py): the shared contract, then what is the folder's own."""
from __future__ import annotations

import stat

import pytest

from app.backups.file_store import FileBackupStore
from app.errors import BackupStoreError
from tests.support.backup_store_contract import BackupStoreContract, Chunks, GeneratedStream, MB, header


def _raw_keys(store: FileBackupStore) -> list[str]:
    if not store.root.exists():
        return []
    return sorted(str(path.relative_to(store.root)) for path in store.root.rglob("*") if path.is_file())


def _tamper(store: FileBackupStore, instance: str, backup_id: str, name: str, data: bytes) -> None:
    (store.root / instance / backup_id / name).write_bytes(data)


class TestFileStore(BackupStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path):
        return lambda clock: FileBackupStore(tmp_path / "backups", clock=clock)

    @pytest.fixture
    def tamper(self):
        return _tamper

    @pytest.fixture
    def raw_keys(self):
        return _raw_keys


@pytest.fixture
def store(tmp_path):
    return FileBackupStore(tmp_path / "backups")


def test_files_are_private_and_no_partial_file_stays(store):
    writer = store.begin(header())
    writer.write_artefact("volume.tar", GeneratedStream(3 * MB))
    writer.commit()
    folder = store.root / "acme-maps" / writer.backup_id
    for path in (store.root / "acme-maps", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "volume.tar"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_stream_that_fails_half_way_leaves_no_file(store):
    class Failing:
        def __init__(self):
            self.calls = 0

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 2:
                raise OSError("engine went away")
            return b"x" * size

    writer = store.begin(header())
    with pytest.raises(OSError, match="engine went away"):
        writer.write_artefact("volume.tar", Failing())
    assert list((store.root / "acme-maps" / writer.backup_id).iterdir()) == []


def test_a_store_that_cannot_be_written_names_the_path_and_the_cause(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    store = FileBackupStore(blocker / "backups")
    with pytest.raises(BackupStoreError) as error:
        store.begin(header())
    assert str(blocker / "backups") in str(error.value) and "(ENOTDIR)" in str(error.value)
    assert not error.value.transient
    assert error.value.public == "the backup storage cannot be used right now"


def test_the_listing_ignores_what_is_not_a_backup_folder(store, tmp_path):
    (store.root / "acme-maps").mkdir(parents=True)
    (store.root / "acme-maps" / "20261201-volume.tar").write_bytes(b"terminate's loose tar")  # LIVE_BACKUP_DIR's
    (store.root / "acme-maps" / "not-an-id").mkdir()
    assert store.list() == [] and store.clean_up_abandoned(0) == []
    assert (store.root / "acme-maps" / "not-an-id").is_dir()


# -- the values of app/backups/store.py ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    (b"not json", "cannot be read: JSONDecodeError"),
    (b"\xff\xfe{", "cannot be read: "),
    (b"[]", "is not a geocat-live-backup/1 manifest (format 'list')"),
    (b'{"format": "geocat-live-backup/2"}', "is not a geocat-live-backup/1 manifest (format 'geocat-live-backup/2')"),
    (b'{"format": "geocat-live-backup/1", "backup_id": "x"}', "cannot be read: KeyError"),
])
def test_a_manifest_that_is_not_one_is_refused_naming_where_it_is(text, message):
    from app.backups.store import Manifest

    with pytest.raises(BackupStoreError) as error:
        Manifest.from_json(text, "s3://b/p/acme/x/manifest.json")
    assert str(error.value).startswith("s3://b/p/acme/x/manifest.json ") and message in str(error.value)


def test_backup_ids_sort_by_time_and_say_when_they_began():
    from datetime import datetime, timedelta, timezone

    from app.backups.store import backup_id_time, is_backup_id, new_backup_id

    t = datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    ids = [new_backup_id(t + timedelta(seconds=n)) for n in (0, 1, 3600, 86400 * 400)]
    assert ids == sorted(ids) and all(is_backup_id(i) for i in ids)
    assert ids[0].startswith("20261231T235959Z-") and backup_id_time(ids[0]) == t
    cest = timezone(timedelta(hours=2))
    assert new_backup_id(datetime(2026, 6, 1, 10, 0, tzinfo=cest)).startswith("20260601T080000Z-")


def test_a_store_whose_parent_folders_are_missing_makes_them_at_the_first_backup(tmp_path):
    store = FileBackupStore(tmp_path / "missing" / "deeper" / "store")
    store.check()  # the nearest existing parent is a writable folder: the store can be made
    writer = store.begin(header())
    writer.write_artefact("volume.data.tar", Chunks(b"data"))
    committed = writer.commit()
    assert [m.backup_id for m in store.list()] == [committed.backup_id]


def test_a_store_that_is_a_file_is_an_error_not_an_empty_listing(tmp_path):
    (tmp_path / "store").write_text("not a folder")
    store = FileBackupStore(tmp_path / "store")
    for call in (store.check, store.list, lambda: store.list(instance="acme-maps")):
        with pytest.raises(BackupStoreError, match="Not a directory"):
            call()
    blocked = FileBackupStore(tmp_path / "store" / "below")
    with pytest.raises(BackupStoreError, match="Not a directory"):
        blocked.check()


def test_an_instance_folder_that_is_a_file_is_an_error_too(tmp_path):
    store = FileBackupStore(tmp_path)
    (tmp_path / "acme-maps").write_text("in the way")
    with pytest.raises(BackupStoreError, match="Not a directory"):
        store.list(instance="acme-maps")
