"""Backups (issue 13). This first part is the store: :mod:`app.backups.store` (the port and its values),
:mod:`app.backups.file_store` (a folder) and :mod:`app.backups.s3_store` (an S3-compatible bucket, boto3).

:func:`backup_store` builds the store ``LIVE_BACKUP_STORE`` names; nothing uses it yet.
"""
from __future__ import annotations

from app.backups.store import BackupStore
from app.config import PROJECT_ROOT


def backup_store(settings) -> BackupStore:
    """The store of ``settings.backup_store`` (``file:///path`` or ``s3://bucket/prefix``, as
    :func:`app.config.load_settings` checked it), at ``settings.s3_endpoint_url`` for S3. boto3 is imported only
    for an S3 store."""
    url = settings.backup_store or f"file://{PROJECT_ROOT / 'var' / 'backups'}"  # Settings(...) built by hand
    if url.startswith("file://"):
        from app.backups.file_store import FileBackupStore

        return FileBackupStore(url[len("file://"):])
    from app.backups.s3_store import S3BackupStore

    bucket, _, prefix = url[len("s3://"):].partition("/")
    return S3BackupStore(bucket, prefix, endpoint_url=settings.s3_endpoint_url)
