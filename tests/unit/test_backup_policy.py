"""Backup policy (app/backups/policy.py): what a backup holds, which backups retention keeps, when one is due.

Times come from the test (an injected clock), never from the machine's.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backups.policy import (
    BackupContents,
    BackupPolicy,
    DumpItem,
    PlanBackup,
    Retention,
    ServiceBackup,
    VolumeItem,
    check_schedule,
    command,
    backup_contents,
    kept_backups,
    next_due,
    policy_from_manifest,
)
from app.compose.model import ServiceSpec, StackSpec, VolumeMount
from app.errors import ConfigError

UTC = timezone.utc


def at(text: str) -> datetime:
    """``"2026-04-30 03:00"`` as an aware UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily(first: str, last: str, hour: int = 3) -> list[tuple[str, datetime]]:
    """One backup a day at ``hour``:00 UTC from ``first`` to ``last`` (dates, inclusive); ids are the dates."""
    day, end, backups = date.fromisoformat(first), date.fromisoformat(last), []
    while day <= end:
        backups.append((day.isoformat(), datetime(day.year, day.month, day.day, hour, tzinfo=UTC)))
        day += timedelta(days=1)
    return backups


# -- retention ------------------------------------------------------------------------------------------------------
def test_four_months_of_daily_backups_keep_seven_days_four_weeks_three_months():
    backups = daily("2026-01-01", "2026-04-30")

    kept = kept_backups(backups, Retention(daily=7, weekly=4, monthly=3), at("2026-04-30 12:00"))

    # daily: Apr 24..30; weekly (ISO weeks, newest of each): Thu Apr 30, Sun Apr 26, Sun Apr 19, Sun Apr 12;
    # monthly (newest of each): Apr 30, Mar 31, Feb 28.
    assert kept == {"2026-04-24", "2026-04-25", "2026-04-26", "2026-04-27", "2026-04-28", "2026-04-29",
                    "2026-04-30", "2026-04-19", "2026-04-12", "2026-03-31", "2026-02-28"}


def test_pruning_after_every_backup_for_months_ends_with_the_same_set_as_pruning_once():
    """The worker prunes after each backup: a clock walks day by day, each day a backup is added, then the set is
    pruned. Nothing a later day needs is ever deleted early."""
    keep = Retention(daily=7, weekly=4, monthly=3)
    stored: list[tuple[str, datetime]] = []
    for backup in daily("2026-01-01", "2026-04-30"):
        stored.append(backup)
        kept = kept_backups(stored, keep, now=backup[1] + timedelta(minutes=5))
        stored = [item for item in stored if item[0] in kept]

    assert {backup_id for backup_id, _ in stored} == {
        "2026-04-24", "2026-04-25", "2026-04-26", "2026-04-27", "2026-04-28", "2026-04-29", "2026-04-30",
        "2026-04-19", "2026-04-12", "2026-03-31", "2026-02-28"}


def test_a_week_across_new_year_is_one_iso_week():
    backups = daily("2025-12-20", "2026-01-06")  # Mon Dec 29 2025 .. Sun Jan 4 2026 is ISO week 2026-W01

    kept = kept_backups(backups, Retention(weekly=3), at("2026-01-06 12:00"))

    assert kept == {"2026-01-06", "2026-01-04", "2025-12-28"}


def test_periods_without_a_backup_do_not_count():
    """A month without backups (the order was suspended) does not use up a monthly slot."""
    backups = daily("2026-01-01", "2026-02-10") + daily("2026-04-01", "2026-04-05")

    kept = kept_backups(backups, Retention(monthly=3), at("2026-04-05 12:00"))

    assert kept == {"2026-04-05", "2026-02-10", "2026-01-31"}


def test_last_keeps_the_newest_n_whatever_their_period():
    backups = [(f"b{hour:02d}", at(f"2026-03-01 {hour:02d}:00")) for hour in range(24)]

    assert kept_backups(backups, Retention(last=3), at("2026-03-02 00:00")) == {"b23", "b22", "b21"}


def test_hourly_keeps_the_newest_of_each_hour():
    backups = [(f"{hour:02d}:{minute:02d}", at(f"2026-03-01 {hour:02d}:{minute:02d}"))
               for hour in range(10, 14) for minute in (0, 15, 30, 45)]

    assert kept_backups(backups, Retention(hourly=3), at("2026-03-01 14:00")) == {"13:45", "12:45", "11:45"}


def test_yearly_keeps_the_newest_of_each_year():
    backups = [(f"{year}-{month:02d}", at(f"{year}-{month:02d}-15 03:00"))
               for year in (2023, 2024, 2025, 2026) for month in (1, 6, 12) if (year, month) <= (2026, 6)]

    assert kept_backups(backups, Retention(yearly=2), at("2026-07-01 00:00")) == {"2026-06", "2025-12"}


def test_one_backup_may_be_kept_by_several_rules_without_using_more_than_one_place_each():
    backups = daily("2026-03-01", "2026-03-31")

    kept = kept_backups(backups, Retention(last=1, daily=2, monthly=1), at("2026-03-31 12:00"))

    assert kept == {"2026-03-31", "2026-03-30"}


def test_the_newest_backup_is_always_kept():
    backups = daily("2026-03-01", "2026-03-03")

    assert kept_backups(backups, Retention(), at("2026-03-10 00:00")) == {"2026-03-03"}


def test_backups_after_now_are_kept_and_take_no_place():
    backups = daily("2026-03-01", "2026-03-05") + [("ahead", at("2026-03-09 03:00"))]

    kept = kept_backups(backups, Retention(daily=2), at("2026-03-05 12:00"))

    assert kept == {"ahead", "2026-03-05", "2026-03-04"}


def test_no_backups_keep_nothing():
    assert kept_backups([], Retention(daily=7), at("2026-03-05 12:00")) == set()


def test_naive_times_are_utc_and_other_zones_are_converted():
    cet = timezone(timedelta(hours=1))
    backups = [("late-utc-day", datetime(2026, 3, 1, 23, 30)),  # naive: UTC, March 1
               ("cet", datetime(2026, 3, 2, 0, 15, tzinfo=cet))]  # March 1, 23:15 UTC: the same UTC day

    assert kept_backups(backups, Retention(daily=5), datetime(2026, 3, 3)) == {"late-utc-day"}


def test_the_same_time_is_ordered_by_id():
    time = at("2026-03-01 03:00")

    assert kept_backups([("a", time), ("c", time), ("b", time)], Retention(last=1), at("2026-03-02 00:00")) == {"c"}


def test_input_order_does_not_matter():
    backups = daily("2026-01-01", "2026-04-30")
    keep = Retention(daily=7, weekly=4, monthly=3)
    now = at("2026-04-30 12:00")

    assert kept_backups(list(reversed(backups)), keep, now) == kept_backups(backups, keep, now)


RETENTIONS = st.builds(Retention, last=st.integers(0, 3), hourly=st.integers(0, 3), daily=st.integers(0, 4),
                       weekly=st.integers(0, 3), monthly=st.integers(0, 3), yearly=st.integers(0, 2))
#: Minutes between one backup and the next: from a minute to 20 days, so every period's boundary is crossed.
GAPS = st.lists(st.integers(1, 60 * 24 * 20), min_size=1, max_size=60)


@settings(max_examples=500, derandomize=True, deadline=None, database=None, print_blob=False)
@given(RETENTIONS, GAPS)
def test_pruning_after_every_backup_keeps_what_pruning_once_keeps_for_any_retention_and_times(keep, gaps):
    """Deterministic (derandomized): what a backup's pruning deletes is never something a later pruning would have
    kept, so pruning after every backup is safe, whatever the rules and however irregular the times."""
    backups, time = [], datetime(2026, 1, 1, tzinfo=UTC)
    for index, minutes in enumerate(gaps):
        time += timedelta(minutes=minutes)
        backups.append((f"{index:04d}", time))
    stored: list[tuple[str, datetime]] = []
    for backup in backups:
        stored.append(backup)
        kept = kept_backups(stored, keep, now=backup[1])
        assert backup[0] in kept  # the newest
        assert len(kept) <= 1 + sum(keep.as_dict().values())
        stored = [item for item in stored if item[0] in kept]

    assert {backup_id for backup_id, _ in stored} == kept_backups(backups, keep, now=time)


# -- Retention ----------------------------------------------------------------------------------------------------
def test_retention_parse_and_as_dict():
    keep = Retention.parse(" daily=7, weekly = 4 ,")

    assert keep == Retention(daily=7, weekly=4)
    assert keep.as_dict() == {"daily": 7, "weekly": 4}
    assert str(keep) == "daily=7,weekly=4"
    assert Retention.parse("last=1,hourly=24,daily=0,monthly=12,yearly=2").as_dict() == {
        "last": 1, "hourly": 24, "monthly": 12, "yearly": 2}


@pytest.mark.parametrize(("text", "expected"), [
    ("", "at least one count must be more than 0"),
    ("daily=0", "at least one count must be more than 0"),
    ("fortnightly=2", "'fortnightly=2' is not PERIOD=COUNT"),
    ("daily", "'daily' is not PERIOD=COUNT"),
    ("daily=7,daily=3", "daily is given twice"),
    ("daily=-1", "daily: expected a whole number >= 0, got '-1'"),
    ("daily=seven", "daily: expected a whole number >= 0, got 'seven'"),
])
def test_retention_parse_refuses_with_the_setting_named(text, expected):
    with pytest.raises(ConfigError) as caught:
        Retention.parse(text)

    assert str(caught.value).startswith("LIVE_BACKUP_KEEP: ")
    assert expected in str(caught.value)


def test_retention_parse_names_the_setting_it_is_given():
    with pytest.raises(ConfigError, match=r"^OTHER_KEEP: "):
        Retention.parse("x=1", name="OTHER_KEEP")


def test_retention_refuses_negative_counts():
    with pytest.raises(ValueError, match="keep daily"):
        Retention(daily=-1)
    with pytest.raises(ValueError, match="unknown period 'fortnightly'"):
        Retention.from_mapping({"fortnightly": 2})


# -- schedule -------------------------------------------------------------------------------------------------------
def test_check_schedule_returns_the_expression_with_single_spaces():
    assert check_schedule("  15 2  * * * ") == "15 2 * * *"
    assert check_schedule("0 */6 * * mon-fri") == "0 */6 * * mon-fri"


@pytest.mark.parametrize(("expr", "expected"), [
    ("61 * * * *", "'61 * * * *' is not a cron expression: "),
    ("0 3 * *", "'0 3 * *' is not a cron expression: Wrong number of fields; got 4, expected 5"),
    ("@daily", "'@daily' is not a cron expression: "),
    ("x * * * *", "'x * * * *' is not a cron expression: "),
    ("0 3 * * 0", "'0 3 * * 0': write the day of week with names"),
    ("0 3 * * 1-5", "'0 3 * * 1-5': write the day of week with names"),
    ("0 0 31 2 *", "'0 0 31 2 *' never fires"),
])
def test_check_schedule_refuses_with_a_reason(expr, expected):
    with pytest.raises(ValueError) as caught:
        check_schedule(expr)

    assert str(caught.value).startswith(expected)


def test_next_due_is_the_first_fire_time_after_the_last_backup():
    assert next_due("0 3 * * *", at("2026-03-01 03:00"), at("2026-03-01 10:00")) == at("2026-03-02 03:00")
    assert next_due("0 3 * * *", at("2026-03-01 03:00:05"), at("2026-03-01 10:00")) == at("2026-03-02 03:00")
    assert next_due("0 */6 * * *", at("2026-03-01 06:00"), at("2026-03-01 06:30")) == at("2026-03-01 12:00")


def test_next_due_after_a_missed_fire_time_is_in_the_past():
    """The worker was down: the backup missed is due at once."""
    assert next_due("0 3 * * *", at("2026-03-01 03:00"), at("2026-03-05 10:00")) == at("2026-03-02 03:00")


def test_next_due_without_a_backup_is_the_next_fire_time_not_at_once():
    assert next_due("0 3 * * *", None, at("2026-03-01 10:00")) == at("2026-03-02 03:00")
    # a fire time within the current minute is due: a caller asking every minute never misses it
    assert next_due("0 3 * * *", None, at("2026-03-02 03:00:40")) == at("2026-03-02 03:00")
    assert next_due("0 3 * * *", None, at("2026-03-02 03:01")) == at("2026-03-03 03:00")


def test_next_due_is_aware_utc_for_naive_and_zoned_inputs():
    due = next_due("0 3 * * sun", datetime(2026, 3, 1, 3, 0), datetime(2026, 3, 1, 10, 0))  # Sun March 1

    assert due == at("2026-03-08 03:00") and due.tzinfo == UTC
    cet = timezone(timedelta(hours=1))
    assert next_due("0 3 * * *", datetime(2026, 3, 1, 3, 30, tzinfo=cet), at("2026-03-01 04:00")) == \
        at("2026-03-01 03:00")


def test_next_due_refuses_an_invalid_schedule():
    with pytest.raises(ValueError, match="is not a cron expression"):
        next_due("61 * * * *", None, at("2026-03-01 10:00"))


# -- policy ---------------------------------------------------------------------------------------------------------
def test_policy_from_manifest_reads_commands_volumes_and_plans():
    policy = policy_from_manifest({
        "schedule": "15 2  * * *",
        "keep": {"daily": 7, "weekly": 4},
        "verify": "weekly",
        "services": {
            "postgis": {"dump": "pg_dump -Fc", "restore": ["pg_restore", "-d", "gis"]},
            "geoserver": {"volumes": ["geoserver-data"], "after_restore": ["true"]},
            "elasticsearch": {"exclude": ["es-data"]},
            "web": None,
        },
        "plans": {"large": {"schedule": "0 */6 * * *", "keep": {"hourly": 24}}, "small": None},
    })

    assert policy.schedule == "15 2 * * *"
    assert policy.keep == Retention(daily=7, weekly=4)
    assert policy.verify == "weekly"
    assert policy.services["postgis"] == ServiceBackup("postgis", dump=("sh", "-c", "pg_dump -Fc"),
                                                       restore=("pg_restore", "-d", "gis"))
    assert policy.services["geoserver"] == ServiceBackup("geoserver", volumes=("geoserver-data",),
                                                         after_restore=("true",))
    assert policy.services["elasticsearch"] == ServiceBackup("elasticsearch", exclude=("es-data",))
    assert policy.services["web"] == ServiceBackup("web")
    assert policy.plans == {"large": PlanBackup("0 */6 * * *", Retention(hourly=24)), "small": PlanBackup()}


def test_no_section_is_the_empty_policy():
    assert policy_from_manifest(None) == BackupPolicy()
    assert BackupPolicy().services == {} and BackupPolicy().plans == {}


def test_a_plan_overrides_the_product_which_overrides_the_defaults():
    default_keep = Retention(daily=7, weekly=4)
    policy = BackupPolicy(schedule="15 2 * * *", keep=Retention(daily=3), verify="weekly",
                          plans={"large": PlanBackup(schedule="0 */6 * * *", keep=Retention(hourly=24),
                                                     verify="daily"),
                                 "medium": PlanBackup(keep=Retention(daily=14))})

    large = policy.for_plan("large", "0 3 * * *", default_keep)
    medium = policy.for_plan("medium", "0 3 * * *", default_keep)
    small = policy.for_plan("small", "0 3 * * *", default_keep)
    bare = BackupPolicy().for_plan("small", "0 3 * * *", default_keep)

    assert (large.schedule, large.keep, large.verify) == ("0 */6 * * *", Retention(hourly=24), "daily")
    assert (medium.schedule, medium.keep, medium.verify) == ("15 2 * * *", Retention(daily=14), "weekly")
    assert (small.schedule, small.keep, small.verify) == ("15 2 * * *", Retention(daily=3), "weekly")
    assert (bare.schedule, bare.keep, bare.verify, dict(bare.services)) == ("0 3 * * *", default_keep, "never", {})


def test_a_string_command_runs_in_a_shell_and_a_list_is_the_argv():
    assert command('pg_dump -U "$POSTGRES_USER"') == ("sh", "-c", 'pg_dump -U "$POSTGRES_USER"')
    assert command(["pg_dump", "-Fc"]) == ("pg_dump", "-Fc")


# -- contents -------------------------------------------------------------------------------------------------------
def stack(**mounts: list[str]) -> StackSpec:
    """A stack whose services (keyword names) mount the named volumes given."""
    volumes = sorted({volume for names in mounts.values() for volume in names})
    services = {name: ServiceSpec(name=name, image="busybox",
                                  volumes=[VolumeMount(volume, f"/data/{index}") for index, volume in enumerate(names)])
                for name, names in mounts.items()}
    return StackSpec(services=services, volumes=volumes, networks={})


SDI = stack(geonetwork=["geonetwork-data"], elasticsearch=["elasticsearch-data"], geoserver=["geoserver-data"],
            postgis=["postgis-data"])
DUMP = ("sh", "-c", "pg_dump -Fc")
RESTORE = ("sh", "-c", "pg_restore -d gis")


def test_without_declarations_every_named_volume_is_archived_once():
    shared = stack(web=["site", "cache"], worker=["site"], db=["db-data"])

    contents = backup_contents({}, shared)

    assert contents == BackupContents(
        volumes=(VolumeItem("cache", ("web",)), VolumeItem("db-data", ("db",)), VolumeItem("site", ("web", "worker"))))
    assert contents.services() == ("db", "web", "worker")


def test_the_sdi_declarations():
    declarations = {
        "postgis": ServiceBackup("postgis", dump=DUMP, restore=RESTORE),
        "geoserver": ServiceBackup("geoserver", volumes=("geoserver-data",)),
        "elasticsearch": ServiceBackup("elasticsearch", exclude=("elasticsearch-data",)),
        "geonetwork": ServiceBackup("geonetwork", after_restore=("true",)),
    }

    contents = backup_contents(declarations, SDI)

    assert contents == BackupContents(
        dumps=(DumpItem("postgis", DUMP, RESTORE),),
        volumes=(VolumeItem("geonetwork-data", ("geonetwork",)), VolumeItem("geoserver-data", ("geoserver",))),
        excluded=("elasticsearch-data",),
        after_restore=(("geonetwork", ("true",)),),
    )
    assert contents.services() == ("geonetwork", "geoserver", "postgis")


def test_a_dumped_service_archives_only_the_volumes_it_lists():
    app = stack(db=["db-data", "db-config"])
    declarations = {"db": ServiceBackup("db", dump=DUMP, restore=RESTORE, volumes=("db-config",))}

    assert backup_contents(declarations, app) == BackupContents(
        dumps=(DumpItem("db", DUMP, RESTORE),), volumes=(VolumeItem("db-config", ("db",)),))


def test_a_stopped_service_with_a_dump_is_archived_as_files():
    declarations = {"postgis": ServiceBackup("postgis", dump=DUMP, restore=RESTORE),
                    "elasticsearch": ServiceBackup("elasticsearch", exclude=("elasticsearch-data",))}

    contents = backup_contents(declarations, SDI, stopped={"postgis", "geoserver"})

    assert contents.dumps == ()
    assert contents.volumes == (VolumeItem("geonetwork-data", ("geonetwork",)),
                                VolumeItem("geoserver-data", ("geoserver",)),
                                VolumeItem("postgis-data", ("postgis",)))
    assert contents.excluded == ("elasticsearch-data",)


def test_an_explicit_volumes_list_leaves_the_others_out():
    app = stack(web=["site", "cache"])

    contents = backup_contents({"web": ServiceBackup("web", volumes=("site",))}, app)

    assert (contents.volumes, contents.excluded) == ((VolumeItem("site", ("web",)),), ("cache",))


def test_an_excluded_volume_is_left_out_even_for_another_service_under_the_default_rule():
    app = stack(search=["index"], indexer=["index"])

    contents = backup_contents({"search": ServiceBackup("search", exclude=("index",))}, app)

    assert (contents.volumes, contents.excluded, contents.services()) == ((), ("index",), ())


def test_a_volume_kept_out_by_a_dump_is_still_archived_for_another_service_that_mounts_it():
    app = stack(db=["shared"], tools=["shared"])

    contents = backup_contents({"db": ServiceBackup("db", dump=DUMP, restore=RESTORE)}, app)

    assert contents.volumes == (VolumeItem("shared", ("db", "tools")),)


def test_declarations_of_services_the_stack_does_not_have_are_ignored():
    contents = backup_contents({"gone": ServiceBackup("gone", dump=DUMP, restore=RESTORE)}, stack(web=["site"]))

    assert contents == BackupContents(volumes=(VolumeItem("site", ("web",)),))
