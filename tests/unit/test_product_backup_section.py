"""product.yml's ``backup`` section (app/catalog/product.py): its shape, what it names in the compose file, and the
policy the product carries (app/backups/policy.py). Every refusal names product, file, service and key."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.backups.policy import BackupPolicy, PlanBackup, Retention, ServiceBackup, backup_contents
from app.catalog.product import build_project, load_product, load_product_folder, sample_builtins

EXAMPLE_PRODUCTS = Path(__file__).resolve().parents[2] / "examples" / "config-repo" / "products"

MANIFEST = textwrap.dedent(
    """\
    name: Backup demo
    plans:
      small: {CACHE: cache}
      large: {CACHE: cache-large}
    """
)

COMPOSE = textwrap.dedent(
    """\
    services:
      web:
        image: busybox
        volumes:
          - site:/site
          - ${CACHE}:/cache
      db:
        image: postgres:17
        volumes:
          - db-data:/var/lib/postgresql/data
      search:
        image: busybox
        volumes:
          - index:/index
    volumes:
      site:
      cache:
      cache-large:
      db-data:
      index:
    """
)


def load(backup: str, manifest: str = MANIFEST, compose: str = COMPOSE, slug: str = "x"):
    return load_product(slug, manifest + textwrap.dedent(backup), compose)


def errors_of(backup: str, **kwargs) -> list[str]:
    return load(backup, **kwargs).errors


# -- valid sections -------------------------------------------------------------------------------------------------
def test_a_product_without_a_backup_section_has_the_empty_policy():
    product = load_product("x", MANIFEST, COMPOSE)

    assert product.errors == []
    assert product.backup == BackupPolicy()


def test_a_full_section_is_read_into_the_policy():
    product = load("""\
        backup:
          schedule: "15 2 * * *"
          keep: {daily: 7, weekly: 4}
          verify: weekly
          services:
            db:
              dump: pg_dump -Fc -U "$POSTGRES_USER" "$POSTGRES_DB"
              restore: [pg_restore, --clean, -d, gis]
            web:
              volumes: [site]
              after_restore: [touch, /site/restored]
            search:
              exclude: [index]
          plans:
            large: {schedule: "0 */6 * * *", keep: {hourly: 24, daily: 14}}
        """)

    assert product.errors == []
    policy = product.backup
    assert (policy.schedule, policy.keep, policy.verify) == ("15 2 * * *", Retention(daily=7, weekly=4), "weekly")
    assert policy.services["db"] == ServiceBackup(
        "db", dump=("sh", "-c", 'pg_dump -Fc -U "$POSTGRES_USER" "$POSTGRES_DB"'),
        restore=("pg_restore", "--clean", "-d", "gis"))
    assert policy.services["web"] == ServiceBackup("web", volumes=("site",), after_restore=("touch", "/site/restored"))
    assert policy.services["search"] == ServiceBackup("search", exclude=("index",))
    assert policy.plans == {"large": PlanBackup("0 */6 * * *", Retention(hourly=24, daily=14))}


def test_product_yml_is_not_interpolated_so_shell_variables_reach_the_container():
    product = load("""\
        backup:
          services:
            db: {dump: 'pg_dump -U "$POSTGRES_USER" ${POSTGRES_DB}', restore: 'pg_restore -d "$$X"'}
        """)

    assert product.errors == []
    assert product.backup.services["db"].dump[2] == 'pg_dump -U "$POSTGRES_USER" ${POSTGRES_DB}'
    assert product.backup.services["db"].restore[2] == 'pg_restore -d "$$X"'


def test_a_service_listed_without_keys_follows_the_default_rule():
    product = load("backup:\n  services:\n    web:\n")

    assert product.errors == []
    assert product.backup.services["web"] == ServiceBackup("web")


def test_volumes_are_checked_in_each_plan_s_rendered_stack():
    product = load("backup:\n  services:\n    web: {exclude: [cache]}\n")

    assert product.errors == [
        "product x: product.yml: backup.services.web.exclude: web does not mount volume 'cache' (plan large)"]


# -- refusals -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("backup", "expected"), [
    ("backup:\n  services:\n    db: {dump: pg_dump -Fc}\n",
     "product x: product.yml: backup.services.db.restore: required with dump"),
    ("backup:\n  services:\n    db: {restore: pg_restore}\n",
     "product x: product.yml: backup.services.db.dump: required with restore"),
    ("backup:\n  services:\n    web: {volumes: [db-data]}\n",
     "product x: product.yml: backup.services.web.volumes: web does not mount volume 'db-data'"),
    ("backup:\n  services:\n    web: {volumes: [nowhere]}\n",
     "product x: product.yml: backup.services.web.volumes: web does not mount volume 'nowhere'"),
    ("backup:\n  services:\n    web: {volumes: [site], exclude: [site]}\n",
     "product x: product.yml: backup.services.web.exclude: 'site' is also in volumes"),
    ("backup:\n  services:\n    cache: {exclude: [x]}\n",
     "product x: product.yml: backup.services.cache: no such service (services: db, search, web)"),
    ("backup:\n  schedule: '61 * * * *'\n",
     "product x: product.yml: backup.schedule: '61 * * * *' is not a cron expression: "),
    ("backup:\n  schedule: '0 3 * * 0'\n",
     "product x: product.yml: backup.schedule: '0 3 * * 0': write the day of week with names"),
    ("backup:\n  plans:\n    huge: {verify: daily}\n",
     "product x: product.yml: backup.plans.huge: no such plan (plans: large, small)"),
    ("backup:\n  plans:\n    large: {schedule: '0 3 * *'}\n",
     "product x: product.yml: backup.plans.large.schedule: '0 3 * *' is not a cron expression: "),
    ("backup:\n  keep: {daily: 0}\n",
     "product x: product.yml: backup.keep: at least one count must be more than 0"),
    ("backup:\n  plans:\n    small: {keep: {weekly: 0, daily: 0}}\n",
     "product x: product.yml: backup.plans.small.keep: at least one count must be more than 0"),
])
def test_a_wrong_section_is_refused_with_product_file_service_and_key(backup, expected):
    errors = errors_of(backup)

    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_a_volume_excluded_by_one_service_and_listed_by_another_is_refused():
    compose = COMPOSE.replace("      - index:/index\n", "      - index:/index\n      - site:/site\n")

    errors = errors_of("backup:\n  services:\n    search: {exclude: [site]}\n    web: {volumes: [site]}\n",
                       compose=compose)

    assert errors == ["product x: product.yml: backup.services.web.volumes: 'site' is excluded by service search"]


@pytest.mark.parametrize(("backup", "expected"), [
    ("backup:\n  services:\n    db: {dump: '', restore: x}\n", "backup.services.db.dump: "),
    ("backup:\n  services:\n    db: {dump: '  ', restore: x}\n", "backup.services.db.dump: "),
    ("backup:\n  services:\n    db: {dump: [], restore: x}\n", "backup.services.db.dump: "),
    ("backup:\n  services:\n    db: {dump: [pg_dump, 3], restore: x}\n", "backup.services.db.dump"),
    ("backup:\n  services:\n    db: {dump: x, restore: {sh: x}}\n", "backup.services.db.restore: "),
    ("backup:\n  services:\n    web: {volume: [site]}\n", "backup.services.web: Additional properties"),
    ("backup:\n  services:\n    web: {volumes: site}\n", "backup.services.web.volumes: "),
    ("backup:\n  services:\n    web: {volumes: [site, site]}\n", "backup.services.web.volumes: "),
    ("backup:\n  keep: {daily: -1}\n", "backup.keep.daily: "),
    ("backup:\n  keep: {fortnightly: 2}\n", "backup.keep: "),
    ("backup:\n  keep: {daily: seven}\n", "backup.keep.daily: "),
    ("backup:\n  keep: {}\n", "backup.keep: "),
    ("backup:\n  verify: yearly\n", "backup.verify: "),
    ("backup:\n  schedule: 3\n", "backup.schedule: "),
    ("backup:\n  when: daily\n", "backup: Additional properties"),
    ("backup:\n  plans:\n    small: {services: {}}\n", "backup.plans.small: Additional properties"),
    ("backup: daily\n", "backup: "),
])
def test_a_section_of_the_wrong_shape_is_refused_by_the_schema(backup, expected):
    errors = errors_of(backup)

    assert len(errors) == 1, errors
    assert errors[0].startswith(f"product x: product.yml: {expected}"), errors


def test_every_problem_is_reported_at_once():
    errors = errors_of("""\
        backup:
          schedule: '0 3 * *'
          services:
            db: {dump: pg_dump}
            web: {volumes: [db-data]}
            nope: {}
          plans:
            huge: {}
        """)

    assert sorted(error.split(": ")[2] for error in errors) == [
        "backup.plans.huge", "backup.schedule", "backup.services.db.restore", "backup.services.nope",
        "backup.services.web.volumes"]


# -- the shipped products -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("slug", ["geonetwork", "geoserver-postgis", "sdi"])
def test_the_shipped_products_declare_their_backups_and_stay_valid(slug):
    product = load_product_folder(EXAMPLE_PRODUCTS / slug)

    assert product.errors == []
    policy = product.backup
    assert policy.keep == Retention(daily=7, weekly=4)
    assert policy.schedule is None  # LIVE_BACKUP_SCHEDULE
    assert policy.verify == ("weekly" if slug == "sdi" else "never")
    for plan in product.plans:
        stack = build_project(product, plan, sample_builtins(slug, plan), product.generate_secrets(),
                              revision="test").stack
        contents = backup_contents(policy.services, stack)
        database = {"geonetwork": "db"}.get(slug, "postgis")
        [dump] = contents.dumps
        assert dump.service == database
        assert dump.dump[:2] == ("sh", "-c") and "pg_dump -Fc" in dump.dump[2]
        # the database is dropped and made again, then the dump restored into it (see geoserver-postgis/product.yml)
        assert dump.restore[:2] == ("sh", "-c") and 'DROP DATABASE IF EXISTS \\"$POSTGRES_DB\\" WITH (FORCE)' in \
            dump.restore[2] and dump.restore[2].endswith('&& pg_restore --no-owner --exit-on-error -U "$POSTGRES_USER" '
                                                         '-d "$POSTGRES_DB"')
        archived = {item.volume for item in contents.volumes}
        assert f"{database}-data" not in archived  # the dump is the database's backup
        if slug != "geoserver-postgis":
            assert "geonetwork-data" in archived and contents.excluded == ("elasticsearch-data",)
        if slug != "geonetwork":
            assert "geoserver-data" in archived


def test_the_busybox_demo_keeps_the_default_rule():
    product = load_product_folder(EXAMPLE_PRODUCTS / "busybox-demo")

    assert product.errors == []
    assert product.backup == BackupPolicy()
