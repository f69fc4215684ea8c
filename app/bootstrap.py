"""The composition root: builds every component once from the settings.

The web app, the CLI and the worker all start here, so they share one way
of wiring the database, the catalog and the container engine.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import peewee

from app import alerts
from app.alerts import AlertDeliverer, WebhookSettings
from app.backups import backup_store
from app.backups.drill import RestoreDrills
from app.backups.policy import Retention
from app.backups.schedule import BackupScheduler
from app.backups.service import BackupDefaults, BackupService
from app.catalog.catalog import Catalog
from app.catalog.gitlab_source import GitLabSource
from app.catalog.source import CatalogSource, LocalFolderSource
from app.config import Settings, load_settings
from app.db import connect_database
from app.ingress.caddy import CaddyIngress, CaddySettings
from app.ingress.routes import RouteTable
from app.ingress.service import IngressService
from app.logging_setup import configure_logging
from app.orders.drift import DriftChecker, DriftMode, DriftRules
from app.orders.logs import OrderLogs
from app.orders.operations import OperationRunner
from app.orders.queries import OrderQueries
from app.orders.service import OrderService
from app.orders.usage import CgroupReader, UsageSampler
from app.orders.worker import Worker
from app.stacks.deployer import Deployer
from app.stacks.docker_engine import DockerEngine
from app.stacks.swarm_engine import SwarmEngine
from app.stacks.engine import Engine
from app.stacks.mirror import MirrorFollower


@dataclass
class Live:
    settings: Settings
    db: peewee.Database
    catalog: Catalog
    engine: Engine
    deployer: Deployer
    orders: OrderService
    runner: OperationRunner
    queries: OrderQueries
    ingress: IngressService
    backups: BackupService

    def backup_scheduler(self) -> BackupScheduler:
        """The worker's backup schedule: due backups are queued as ``backup`` operations of kind ``scheduled``."""
        return BackupScheduler(self.backups, self.runner.policy,
                               lambda order: self.orders.back_up(order, "scheduled", requested_by="schedule"))

    def restore_drills(self) -> RestoreDrills:
        """The worker's restore drills (products with ``backup.verify``)."""
        return RestoreDrills(self.backups, self.runner.policy, self.runner.project, self.settings.deployment)

    def worker(self) -> Worker:
        s = self.settings
        return Worker(self.db, self.runner, self.catalog, concurrency=s.worker_concurrency,
                      poll_seconds=s.worker_poll_seconds, retry_base_seconds=s.retry_base_seconds,
                      lease_seconds=s.lease_seconds, catalog_sync_seconds=s.catalog_sync_seconds,
                      ingress=self.ingress, ingress_resync_seconds=s.ingress_resync_seconds,
                      backups=self.backup_scheduler(), drills=self.restore_drills(), usage=self.usage_sampler(),
                      mirror=self.mirror_follower(), drift=self.drift_checker(), drift_seconds=s.drift_seconds,
                      alerts=AlertDeliverer(WebhookSettings.from_settings(s)))

    def usage_sampler(self) -> UsageSampler:
        """The worker's usage sampler (app/orders/usage.py): cgroup files of this machine where it runs the
        containers, else stats calls; memory limits from the orders' rendered projects."""
        s = self.settings
        return UsageSampler(self.engine, s.deployment, self.runner.project, sample_seconds=s.usage_sample_seconds,
                            disk_seconds=s.usage_disk_seconds, stats_per_second=s.usage_stats_per_second,
                            cgroups=CgroupReader())

    def drift_checker(self) -> DriftChecker:
        """The worker's drift checker (app/orders/drift.py) with the LIVE_DRIFT settings."""
        s = self.settings
        return DriftChecker(s.deployment, self.orders, self.engine, DriftRules(
            mode=DriftMode(s.drift), max_repairs=s.drift_max_repairs, window_seconds=s.drift_window_seconds,
            crash_deaths=s.drift_crash_deaths, unhealthy_seconds=s.drift_unhealthy_seconds,
            log_lines=s.drift_log_lines), stale_seconds=s.mirror_stale_seconds)

    @functools.cached_property
    def logs(self) -> OrderLogs:
        """Orders' service logs read from the engine (app/orders/logs.py)."""
        return OrderLogs(self.engine, self.settings.deployment, self.settings.logs_timeout_seconds)

    def mirror_follower(self) -> MirrorFollower:
        """The worker's follower of the engine's events (app/stacks/mirror.py); the worker names it."""
        return MirrorFollower(self.engine, self.db, self.settings.deployment, follower="")


def catalog_source(settings: Settings) -> CatalogSource:
    """GitLab when LIVE_GITLAB_URL is set, else the local folder LIVE_CONFIG_REPO."""
    if settings.gitlab_url:
        return GitLabSource(settings.gitlab_url, settings.gitlab_token, settings.gitlab_project, settings.gitlab_ref,
                            timeout=settings.gitlab_timeout)
    return LocalFolderSource(settings.config_repo)


def route_table(settings: Settings) -> RouteTable | None:
    """Caddy's admin API when LIVE_CADDY_ADMIN_URL is set, else None (no ingress)."""
    if not settings.caddy_admin_url:
        return None
    return CaddyIngress(CaddySettings(
        admin_url=settings.caddy_admin_url, deployment=settings.deployment, base_domain=settings.base_domain,
        tls=settings.tls, acme_email=settings.acme_email, bind=settings.ingress_bind,
        http_port=settings.ingress_http_port, https_port=settings.ingress_https_port,
        ask_url=settings.ingress_ask_url, billing_url=settings.billing_url))


def container_engine(settings: Settings) -> Engine:
    """The orchestrator of LIVE_ORCHESTRATOR: the Docker engine at ``DOCKER_HOST`` (``docker``), or the Docker
    Swarm whose manager is at ``DOCKER_HOST`` (``swarm``, docs/SCALING.md)."""
    if settings.orchestrator == "swarm":
        return SwarmEngine(settings.docker_host, encrypt_networks=settings.swarm_encrypt_networks,
                           proxy_container=settings.swarm_proxy_container,
                           mirror_poll_seconds=settings.mirror_poll_seconds)
    return DockerEngine(settings.docker_host)


def bootstrap(settings: Settings | None = None, engine: Engine | None = None,
              routes: RouteTable | None = None) -> Live:
    """Build the application from ``settings`` (default: the environment's).

    ``engine`` is the container engine to deploy on; by default the Docker engine at ``DOCKER_HOST``
    (tests pass an in-memory one, ``tests/fakes.py``). ``routes`` is the proxy the ingress programs; by
    default Caddy at LIVE_CADDY_ADMIN_URL, or none when it is unset (tests may pass an in-memory one).
    """
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    alerts.configure(WebhookSettings.from_settings(settings))  # where this process's alerts go (app/alerts.py)
    db = connect_database(settings.database_url)
    catalog = Catalog(catalog_source(settings), orchestrator=settings.orchestrator)
    engine = engine if engine is not None else container_engine(settings)
    deployer = Deployer(engine, health_timeout=settings.health_timeout_seconds, helper_image=settings.helper_image)
    ingress = IngressService(routes if routes is not None else route_table(settings), catalog, settings.base_domain,
                             swarm_deployment=settings.deployment if settings.orchestrator == "swarm" else None)
    backups = BackupService(backup_store(settings), deployer, BackupDefaults(
        schedule=settings.backup_schedule, keep=Retention.parse(settings.backup_keep),
        keep_terminated_days=settings.backup_keep_terminated_days,
        keep_unscheduled_days=settings.backup_keep_unscheduled_days))
    runner = OperationRunner(catalog, deployer, backups, settings.public_address,
                             deployment=settings.deployment, routed_ports=ingress.ports_still_routed,
                             swarm_pool=settings.swarm_pool)
    return Live(
        settings=settings,
        db=db,
        catalog=catalog,
        engine=engine,
        deployer=deployer,
        orders=OrderService(catalog, settings.base_domain, max_attempts=settings.operation_max_attempts,
                            data_risks=runner.data_risks, preview=runner.preview, move_target=runner.move_target),
        runner=runner,
        queries=OrderQueries(settings, db, catalog, engine, runner, ingress),
        ingress=ingress,
        backups=backups,
    )
