"""Backups (issue 13). This first part is the store: :mod:`app.backups.store` (the port and its values) and
:mod:`app.backups.file_store` (a folder)."""
