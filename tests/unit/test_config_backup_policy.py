"""LIVE_BACKUP_SCHEDULE, LIVE_BACKUP_KEEP and LIVE_BACKUP_KEEP_TERMINATED_DAYS (app/config.py): defaults, and a bad
value stops start-up with a message naming the variable."""
from __future__ import annotations

import pytest

from app.backups.policy import Retention
from app.config import load_settings
from app.errors import ConfigError


def settings(tmp_path, **env):
    return load_settings({"LIVE_BACKUP_DIR": str(tmp_path), **env})


def test_the_defaults_are_daily_at_three_seven_days_four_weeks_and_thirty_days(tmp_path):
    s = settings(tmp_path)
    assert (s.backup_schedule, s.backup_keep, s.backup_keep_terminated_days) == ("0 3 * * *", "daily=7,weekly=4", 30)
    assert Retention.parse(s.backup_keep) == Retention(daily=7, weekly=4)


def test_the_default_store_is_the_backup_folder(tmp_path):
    assert settings(tmp_path).backup_store == f"file://{tmp_path.resolve()}"


@pytest.mark.parametrize(("name", "value"), [
    ("LIVE_BACKUP_SCHEDULE", "61 * * * *"), ("LIVE_BACKUP_SCHEDULE", "every day"),
    ("LIVE_BACKUP_SCHEDULE", "0 3 * * 0"),  # numeric days of week: cron and APScheduler disagree on 0
    ("LIVE_BACKUP_KEEP", "daily=seven"), ("LIVE_BACKUP_KEEP", "fortnightly=2"), ("LIVE_BACKUP_KEEP", "daily=0"),
    ("LIVE_BACKUP_KEEP_TERMINATED_DAYS", "-1"), ("LIVE_BACKUP_KEEP_TERMINATED_DAYS", "a month"),
])
def test_a_bad_value_names_its_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        settings(tmp_path, **{name: value})


def test_zero_days_deletes_final_backups_at_the_next_clean_up(tmp_path):
    assert settings(tmp_path, LIVE_BACKUP_KEEP_TERMINATED_DAYS="0").backup_keep_terminated_days == 0
