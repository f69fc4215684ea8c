"""What a backup of an order holds, how long backups are kept, and when the next one is due (issue 13).

Pure functions and values: no engine, no database, no clock of their own (``now`` is always a parameter).

- :class:`BackupPolicy` is a product's ``backup`` section of product.yml (:mod:`app.catalog.product` validates
  it and builds it with :func:`policy_from_manifest`); :meth:`BackupPolicy.for_plan` resolves it for one plan
  against the settings' defaults (``LIVE_BACKUP_SCHEDULE``, ``LIVE_BACKUP_KEEP``).
- :func:`backup_contents`: the dumps and volumes a backup of a stack holds (docs/BACKUPS.md, "What is backed up").
- :func:`kept_backups`: the backups a :class:`Retention` keeps (grandfather-father-son, like restic's
  ``--keep-*``).
- :func:`check_schedule` and :func:`next_due`: 5-field cron expressions in UTC, read by APScheduler's
  ``CronTrigger.from_crontab``.

Times are :class:`~datetime.datetime` in UTC; a naive value is taken as UTC (the database stores naive UTC),
results are aware (``tzinfo=timezone.utc``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping, Sequence

from apscheduler.triggers.cron import CronTrigger

from app.compose.model import StackSpec
from app.errors import ConfigError

#: A command run in a service's container: its argv. product.yml's string form becomes ``("sh", "-c", text)``.
Command = tuple[str, ...]

#: ``verify`` values: how often the worker runs a restore drill of the latest backup.
VERIFY_VALUES = ("never", "daily", "weekly", "monthly")
#: Retention's keys, in the order they are shown.
RETENTION_KEYS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


# -- values ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceBackup:
    """One service's entry under ``backup.services``.

    ``dump``: run in the running container, its stdout is the service's artefact; ``restore`` reads that artefact
    on stdin (both or neither). ``volumes``: the named volumes of this service archived as files (``None``: the
    default rule; with a dump, ``None`` means none). ``exclude``: volumes left out (rebuildable). ``after_restore``:
    run in the service's container once the stack is up again after a restore. Volume names are the compose
    file's (top-level ``volumes:`` keys).
    """

    service: str
    dump: Command | None = None
    restore: Command | None = None
    volumes: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    after_restore: Command | None = None


@dataclass(frozen=True)
class Retention:
    """How many backups to keep: the ``last`` n newest, and the newest of each of the n most recent hours, UTC
    days, ISO weeks, months and years that have a backup (see :func:`kept_backups`). Counts are >= 0."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"keep {item.name}: expected a whole number >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, counts: Mapping[str, int]) -> "Retention":
        """From product.yml's ``keep`` mapping (``{daily: 7, weekly: 4}``), already validated by the catalog.
        ValueError for an unknown key or a count that is not a whole number >= 0."""
        unknown = sorted(set(counts) - set(RETENTION_KEYS))
        if unknown:
            raise ValueError(f"keep: unknown period {unknown[0]!r} (known: {', '.join(RETENTION_KEYS)})")
        return cls(**dict(counts))

    @classmethod
    def parse(cls, text: str, name: str = "LIVE_BACKUP_KEEP") -> "Retention":
        """From the settings' form ``"daily=7,weekly=4"`` (spaces allowed around items). At least one count must
        be more than 0. Raises :class:`~app.errors.ConfigError` whose message starts with ``name``."""
        counts: dict[str, int] = {}
        for item in (text or "").split(","):
            item = item.strip()
            if not item:
                continue
            key, equals, value = (part.strip() for part in item.partition("="))
            if not equals or key not in RETENTION_KEYS:
                raise ConfigError(f"{name}: {item!r} is not PERIOD=COUNT with PERIOD one of "
                                  f"{', '.join(RETENTION_KEYS)} (for example daily=7,weekly=4), in {text!r}")
            if key in counts:
                raise ConfigError(f"{name}: {key} is given twice, in {text!r}")
            if not re.fullmatch(r"[0-9]{1,6}", value):
                raise ConfigError(f"{name}: {key}: expected a whole number >= 0, got {value!r}")
            counts[key] = int(value)
        if not any(counts.values()):
            raise ConfigError(f"{name}: at least one count must be more than 0 (for example daily=7,weekly=4), "
                              f"got {text!r}")
        return cls(**counts)

    def as_dict(self) -> dict[str, int]:
        """The counts that are not 0, in :data:`RETENTION_KEYS` order (``{"daily": 7, "weekly": 4}``)."""
        return {key: getattr(self, key) for key in RETENTION_KEYS if getattr(self, key)}

    def __str__(self) -> str:
        return ",".join(f"{key}={count}" for key, count in self.as_dict().items()) or "none"


@dataclass(frozen=True)
class PlanBackup:
    """A plan's overrides under ``backup.plans``: ``None`` keeps the product's value."""

    schedule: str | None = None
    keep: Retention | None = None
    verify: str | None = None


@dataclass(frozen=True)
class ResolvedPolicy:
    """The policy of one plan, every value decided: ``schedule`` a 5-field cron expression (UTC)."""

    schedule: str
    keep: Retention
    verify: str
    services: Mapping[str, ServiceBackup]


@dataclass(frozen=True)
class BackupPolicy:
    """A product's ``backup`` section. ``BackupPolicy()`` is a product without one: the settings' schedule and
    retention, no restore drills, the default rule for every service."""

    schedule: str | None = None
    keep: Retention | None = None
    verify: str = "never"
    services: Mapping[str, ServiceBackup] = field(default_factory=lambda: _EMPTY)
    plans: Mapping[str, PlanBackup] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self):
        object.__setattr__(self, "services", MappingProxyType(dict(self.services)))
        object.__setattr__(self, "plans", MappingProxyType(dict(self.plans)))

    def for_plan(self, plan: str, default_schedule: str, default_keep: Retention) -> ResolvedPolicy:
        """The policy of ``plan``: the plan's override, else the product's value, else the default."""
        override = self.plans.get(plan) or PlanBackup()
        return ResolvedPolicy(
            schedule=override.schedule or self.schedule or default_schedule,
            keep=override.keep or self.keep or default_keep,
            verify=override.verify or self.verify,
            services=self.services,
        )


@dataclass(frozen=True)
class DumpItem:
    """A service backed up by its dump command (run in its running container; stdout is the artefact)."""

    service: str
    dump: Command
    restore: Command


@dataclass(frozen=True)
class VolumeItem:
    """A named volume archived as files: ``volume`` is the compose volume name, ``services`` every service of the
    stack that mounts it (sorted): those are stopped to restore it."""

    volume: str
    services: tuple[str, ...]


@dataclass(frozen=True)
class BackupContents:
    """What a backup of a stack holds, in a deterministic order (each tuple sorted).

    ``excluded``: volumes mounted by the stack that are in no artefact (an ``exclude``, or left out of a service's
    explicit ``volumes`` list); the volumes of a service backed up by its dump are not listed there.
    ``after_restore``: ``(service, command)`` pairs to run once the stack is up again after a restore.
    """

    dumps: tuple[DumpItem, ...] = ()
    volumes: tuple[VolumeItem, ...] = ()
    excluded: tuple[str, ...] = ()
    after_restore: tuple[tuple[str, Command], ...] = ()

    def services(self) -> tuple[str, ...]:
        """The services whose data the backup covers, sorted."""
        names = {item.service for item in self.dumps}
        for item in self.volumes:
            names.update(item.services)
        return tuple(sorted(names))


# -- product.yml --------------------------------------------------------------------------------------------------
def command(value: str | Sequence[str]) -> Command:
    """product.yml's command: a string runs in a shell (``("sh", "-c", text)``), a list is the argv itself."""
    if isinstance(value, str):
        return ("sh", "-c", str(value))  # str(): a plain str, not the YAML reader's KeptText
    return tuple(str(part) for part in value)


def policy_from_manifest(section: Mapping[str, Any] | None) -> BackupPolicy:
    """The :class:`BackupPolicy` of product.yml's ``backup`` section, which the catalog's schema has checked for
    shape (:data:`app.catalog.product.MANIFEST_SCHEMA`); ``None`` or an absent section is ``BackupPolicy()``.
    The cross-checks (services, volumes, plans, cron) are the catalog's; this only reads."""
    if not section:
        return BackupPolicy()
    services = {}
    for name, entry in (section.get("services") or {}).items():
        entry = entry or {}
        services[str(name)] = ServiceBackup(
            service=str(name),
            dump=command(entry["dump"]) if "dump" in entry else None,
            restore=command(entry["restore"]) if "restore" in entry else None,
            volumes=tuple(str(v) for v in entry["volumes"]) if entry.get("volumes") is not None else None,
            exclude=tuple(str(v) for v in entry.get("exclude") or ()),
            after_restore=command(entry["after_restore"]) if "after_restore" in entry else None,
        )
    plans = {}
    for name, entry in (section.get("plans") or {}).items():
        entry = entry or {}
        plans[str(name)] = PlanBackup(
            schedule=_schedule_text(entry.get("schedule")),
            keep=Retention.from_mapping(entry["keep"]) if entry.get("keep") else None,
            verify=str(entry["verify"]) if entry.get("verify") else None,
        )
    return BackupPolicy(
        schedule=_schedule_text(section.get("schedule")),
        keep=Retention.from_mapping(section["keep"]) if section.get("keep") else None,
        verify=str(section.get("verify") or "never"),
        services=services,
        plans=plans,
    )


def _schedule_text(value: Any) -> str | None:
    return " ".join(str(value).split()) if value else None


# -- contents -------------------------------------------------------------------------------------------------------
def backup_contents(services: Mapping[str, ServiceBackup], stack: StackSpec,
                    stopped: Collection[str] = ()) -> BackupContents:
    """What a backup of ``stack`` holds under the declarations ``services`` (service name -> entry).

    - A service without an entry (or an entry without ``dump`` and ``volumes``): every named volume it mounts is
      archived as files, except those an ``exclude`` of any service names.
    - A service with ``dump``: one :class:`DumpItem`; its volumes are archived as files only when listed in its
      ``volumes``. When the service is in ``stopped`` (not running, so no dump can be taken) its volumes are
      archived as files instead, as by the default rule (a stopped database's files are consistent).
    - A service with ``volumes`` and no dump: those volumes only.
    - A volume mounted by several services is archived once (:class:`VolumeItem` names them all).

    Entries for services the stack does not have are ignored (the catalog refuses them when it validates the
    product). Every tuple of the result is sorted.
    """
    stopped = set(stopped)
    excluded_by_anyone = {volume for entry in services.values() for volume in entry.exclude}
    mounted_by: dict[str, set[str]] = {}
    for name, spec in stack.services.items():
        for mount in spec.volumes:
            mounted_by.setdefault(mount.volume, set()).add(name)

    dumps: list[DumpItem] = []
    archived: set[str] = set()
    behind_dump: set[str] = set()
    after_restore: list[tuple[str, Command]] = []
    for name in sorted(stack.services):
        mounted = [mount.volume for mount in stack.services[name].volumes]
        entry = services.get(name) or ServiceBackup(service=name)
        if entry.after_restore:
            after_restore.append((name, entry.after_restore))
        if entry.dump and entry.restore and name not in stopped:
            dumps.append(DumpItem(name, entry.dump, entry.restore))
            chosen = set(entry.volumes or ()) & set(mounted)
            behind_dump.update(set(mounted) - chosen)
        elif entry.volumes is not None and not entry.dump:
            chosen = set(entry.volumes) & set(mounted)
        else:  # the default rule, and the fallback of a stopped service that has a dump
            chosen = set(mounted)
        archived.update(chosen - excluded_by_anyone)

    volumes = tuple(VolumeItem(volume, tuple(sorted(mounted_by[volume]))) for volume in sorted(archived))
    excluded = tuple(sorted(set(mounted_by) - archived - (behind_dump - excluded_by_anyone)))
    return BackupContents(dumps=tuple(dumps), volumes=volumes, excluded=excluded,
                          after_restore=tuple(after_restore))


# -- retention ------------------------------------------------------------------------------------------------------
_PERIODS: tuple[tuple[str, Callable[[datetime], tuple]], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar())[:2]),  # ISO year and week: weeks start on Monday
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: (t.year,)),
)


def kept_backups(backups: Sequence[tuple[str, datetime]], keep: Retention, now: datetime) -> set[str]:
    """The ids of ``backups`` (``(id, time)`` pairs, any order) that ``keep`` keeps at ``now``; the others may be
    deleted.

    Grandfather-father-son, as restic's ``forget --keep-*`` counts: going from the newest backup to the oldest,
    ``last`` keeps the n newest; ``hourly``, ``daily``, ``weekly``, ``monthly`` and ``yearly`` each keep the newest
    backup of each of the n most recent periods (UTC hour, UTC day, ISO week, month, year) that have a backup.
    Periods without a backup do not count, so a pause in backups never deletes old ones early. One backup may be
    kept by several rules at once. The newest backup is always kept. Backups later than ``now`` (a clock that was
    ahead) are kept and take no rule's place. Backups with the same time are ordered by id.
    """
    now = _utc(now)
    dated = sorted(((_utc(time), backup_id) for backup_id, time in backups), reverse=True)
    kept = {backup_id for time, backup_id in dated if time > now}
    if dated:
        kept.add(dated[0][1])
    remaining = {"last": keep.last, **{name: getattr(keep, name) for name, _ in _PERIODS}}
    last_period: dict[str, tuple] = {}
    for time, backup_id in (pair for pair in dated if pair[0] <= now):
        if remaining["last"] > 0:
            remaining["last"] -= 1
            kept.add(backup_id)
        for name, period_of in _PERIODS:
            period = period_of(time)
            if remaining[name] > 0 and last_period.get(name) != period:
                remaining[name] -= 1
                last_period[name] = period
                kept.add(backup_id)
    return kept


# -- schedule -------------------------------------------------------------------------------------------------------
#: A time at which every valid expression has a next fire time within a few years (Feb 29 2024 exists).
_REFERENCE = datetime(2024, 1, 1, tzinfo=timezone.utc)


def check_schedule(expr: str) -> str:
    """``expr`` as a 5-field cron expression in UTC (minute hour day-of-month month day-of-week), fields separated by
    one space; ValueError with a readable reason when it is not one (``'61 * * * *' is not a cron expression:
    ...``).

    Read by APScheduler's ``CronTrigger.from_crontab``. The day of week must be written with names (``sun``,
    ``mon-fri``) or ``*``: APScheduler counts day 0 as Monday where cron counts it as Sunday, so numbers would mean
    another day than the author meant. Restricting both the day of month and the day of week is refused too
    (cron fires on either, APScheduler on both). An expression that never fires (``0 0 31 2 *``) is refused.
    """
    if not isinstance(expr, str):
        raise ValueError(f"{expr!r} is not a cron expression: expected text like '0 3 * * *'")
    text = " ".join(expr.split())
    try:
        trigger = _trigger(text)
    except ValueError as exc:
        raise ValueError(f"{expr!r} is not a cron expression: {exc}") from None
    day_of_month, day_of_week = text.split(" ")[2], text.split(" ")[4]
    if re.search(r"[0-9]", day_of_week):
        raise ValueError(f"{expr!r}: write the day of week with names (sun, mon-fri, sat,sun) or *, not numbers: "
                         "cron counts day 0 as Sunday, the scheduler as Monday")
    if day_of_month != "*" and day_of_week != "*":
        # cron fires when EITHER matches (POSIX crontab, "day of month or day of week"); the scheduler only when
        # both do. Neither reading is safe to guess: ask for one of the two.
        raise ValueError(f"{expr!r}: restrict the day of month or the day of week, not both: cron fires on either, "
                         "the scheduler only on days matching both")
    if trigger.get_next_fire_time(None, _REFERENCE) is None:
        raise ValueError(f"{expr!r} never fires (no such date)")
    return text


def next_due(schedule: str, last: datetime | None, now: datetime) -> datetime:
    """When the next scheduled backup is due (UTC, aware): the first time ``schedule`` fires after ``last``, the
    time of the latest backup taken on schedule.

    With ``last`` ``None`` (no backup yet) it is the first fire time after ``now`` minus one minute, the cron's
    resolution: a fire time in the current minute is due now, an earlier one is not. So a new order is backed up
    at the next fire time, not at once, by a caller that asks at least once a minute; a caller that may miss that
    minute passes the time the order came under the schedule (its creation) as ``last`` instead. May be in the
    past (a backup missed while the worker was down is due at once). ValueError when ``schedule`` is not valid
    (:func:`check_schedule`), or fires no more.
    """
    trigger = _trigger(check_schedule(schedule))
    after = _utc(last) if last is not None else _utc(now) - timedelta(minutes=1)
    due = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if due is None:
        raise ValueError(f"{schedule!r} does not fire after {after.isoformat()}")
    return due.astimezone(timezone.utc)


def _trigger(text: str) -> CronTrigger:
    return CronTrigger.from_crontab(text, timezone=timezone.utc)


def _utc(time: datetime) -> datetime:
    if time.tzinfo is None:
        return time.replace(tzinfo=timezone.utc)
    return time.astimezone(timezone.utc)
