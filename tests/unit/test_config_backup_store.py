"""LIVE_BACKUP_STORE and LIVE_S3_ENDPOINT_URL (issue 13): defaults, normal forms, and one message per bad value."""
from __future__ import annotations

import pytest

from app.backups import backup_store
from app.backups.file_store import FileBackupStore
from app.config import PROJECT_ROOT, load_settings
from app.errors import ConfigError


def test_the_default_store_is_a_folder_in_the_checkout():
    settings = load_settings({})
    assert settings.backup_store == f"file://{PROJECT_ROOT / 'var' / 'backups'}"
    assert settings.s3_endpoint_url is None
    store = backup_store(settings)
    assert isinstance(store, FileBackupStore) and store.root == PROJECT_ROOT / "var" / "backups"


@pytest.mark.parametrize("value, expected", [
    ("file:///srv/backups/", "file:///srv/backups"),
    ("file:///srv/./live//backups", "file:///srv/live/backups"),
    ("s3://geocat-backups", "s3://geocat-backups"),
    ("s3://geocat-backups/", "s3://geocat-backups"),
    ("s3://geocat-backups/live/prod/", "s3://geocat-backups/live/prod"),
    (" s3://geocat.backups-1/live ", "s3://geocat.backups-1/live"),
])
def test_store_urls_are_read_in_a_normal_form(value, expected):
    assert load_settings({"LIVE_BACKUP_STORE": value}).backup_store == expected


@pytest.mark.parametrize("value, message", [
    ("/srv/backups", "LIVE_BACKUP_STORE must be file:///<absolute path> or s3://<bucket>/<prefix>, got '/srv/backups'"),
    ("file://srv/backups", "LIVE_BACKUP_STORE must be file:///<absolute path> (three slashes)"),
    ("file://relative", "LIVE_BACKUP_STORE must be file:///<absolute path> (three slashes)"),
    ("ftp://host/x", "LIVE_BACKUP_STORE must be file:///<absolute path> or s3://<bucket>/<prefix>"),
    ("s3://", "LIVE_BACKUP_STORE must name an S3 bucket"),
    ("s3://Geocat_Backups/x", "LIVE_BACKUP_STORE must name an S3 bucket"),
    ("s3://ab", "LIVE_BACKUP_STORE must name an S3 bucket"),
    ("s3://a..b/x", "LIVE_BACKUP_STORE must name an S3 bucket"),
    ("s3://geocat-backups/live/../etc", "LIVE_BACKUP_STORE's prefix must be folders"),
    ("s3://geocat-backups/a//b", "LIVE_BACKUP_STORE's prefix must be folders"),
    ("s3://geocat-backups/with space", "LIVE_BACKUP_STORE's prefix must be folders"),
])
def test_bad_stores_are_named(value, message):
    with pytest.raises(ConfigError) as error:
        load_settings({"LIVE_BACKUP_STORE": value})
    assert message in str(error.value)


def test_an_endpoint_goes_with_an_s3_store():
    settings = load_settings({"LIVE_BACKUP_STORE": "s3://geocat-backups/live",
                              "LIVE_S3_ENDPOINT_URL": "https://s3.example.org:9000/"})
    assert settings.s3_endpoint_url == "https://s3.example.org:9000"
    with pytest.raises(ConfigError, match="LIVE_S3_ENDPOINT_URL is set but LIVE_BACKUP_STORE is not s3://"):
        load_settings({"LIVE_S3_ENDPOINT_URL": "https://s3.example.org"})


@pytest.mark.parametrize("value", ["s3.example.org", "ftp://s3.example.org", "https://key:secret@s3.example.org",
                                   "https://s3.example.org/bucket", "https://s3.example.org?x=1",
                                   "http://s3.example.org:notaport", "https://"])
def test_bad_endpoints_are_named_without_echoing_them(value):
    with pytest.raises(ConfigError, match="LIVE_S3_ENDPOINT_URL must be http") as error:
        load_settings({"LIVE_BACKUP_STORE": "s3://geocat-backups", "LIVE_S3_ENDPOINT_URL": value})
    assert "secret" not in str(error.value)


def test_the_factory_builds_an_s3_store_from_the_settings(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = backup_store(load_settings({"LIVE_BACKUP_STORE": "s3://geocat-backups/live/prod",
                                        "LIVE_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}))
    assert (store.bucket, store.prefix, store.endpoint_url) == ("geocat-backups", "live/prod", "http://127.0.0.1:9000")
    assert repr(store) == "S3BackupStore('s3://geocat-backups/live/prod at http://127.0.0.1:9000')"
