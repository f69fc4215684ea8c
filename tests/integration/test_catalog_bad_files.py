"""One bad file never takes the catalog down (issue 9, item 2): local folder and GitLab, SQLite and PostgreSQL.

A config repository holds one good product and one product per kind of file the
catalog cannot read. A sync lists each bad one invalid with a named error, the
good ones valid, and both sources report exactly the same errors. The CLI never
shows a traceback and the worker survives whatever the catalog holds.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from app import create_app
from app.bootstrap import bootstrap
from app.catalog.catalog import Catalog
from app.catalog.files import printable_name
from app.catalog.gitlab_source import GitLabSource
from app.catalog.source import LocalFolderSource, SourceProduct
from app.db import upgrade
from app.models import Product, ProductRevision
from tests.support.gitlab_emulator import GitLabEmulator, Symlink, blob_id

GOOD_MANIFEST = "name: Good\nplans:\n  basic:\n"
GOOD_COMPOSE = "services:\n  web:\n    image: busybox\n"
LATIN1_NAME = os.fsdecode("d\xe9p\xf4t".encode("latin-1"))  # a folder named in Latin-1, as os.listdir gives it
LONG_LATIN1_NAME = os.fsdecode(b"\xe9" * 200)  # 200 bytes on disk, 800 characters once escaped
SLUG_RULE = "the folder name must match [a-z][a-z0-9-]* (at most 63 characters): "


def layout() -> dict[str, bytes | Symlink]:
    """The repository: path -> content (bytes) or symbolic link."""
    files: dict[str, bytes | Symlink] = {"outside.yml": GOOD_MANIFEST.encode(),
                                         "products/README.md": b"not a product\n"}

    def product(name: str, manifest=GOOD_MANIFEST.encode(), compose=GOOD_COMPOSE.encode()) -> None:
        for filename, content in (("product.yml", manifest), ("docker-compose.yml", compose)):
            if content is not None:
                files[f"products/{name}/{filename}"] = content

    product("good")
    product("latin1", manifest="name: Dépôt\nplans:\n  basic:\n".encode("latin-1"))
    product("utf16", manifest=GOOD_MANIFEST.encode("utf-16"))
    product("binary", compose=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    product("huge", manifest=GOOD_MANIFEST.encode() + b"#" * (600 * 1024) + b"\n")
    product("escape-code", manifest=b"name: \x1b[2Jcleared\nplans:\n  basic:\n")
    product("link-outside", manifest=Symlink("../../outside.yml"))
    product("link-absolute", compose=Symlink("/etc/passwd"))
    product("link-inside", manifest=Symlink("../good/product.yml"), compose=Symlink("../alias/docker-compose.yml"))
    product("link-loop", manifest=Symlink("product.yml"))
    product("link-dangling", manifest=Symlink("nowhere.yml"))
    product("missing", compose=None)
    product("folder-file", manifest=None)
    files["products/folder-file/product.yml/README"] = b"a folder where the file should be\n"
    files["products/alias"] = Symlink("good")
    files["products/escape"] = Symlink("../..")
    product("Bad Name")
    product("x" * 100)
    product(LATIN1_NAME)
    product(LONG_LATIN1_NAME)
    product("new\nline")
    return files


EXPECTED_INVALID = {
    "latin1": ["product latin1: product.yml: not UTF-8: byte 0xE9 at line 1, column 8 (byte offset 7) is not valid "
               "UTF-8; save the file as UTF-8"],
    "utf16": ["product utf16: product.yml is UTF-16 or UTF-32 (it starts with a byte order mark); save it as UTF-8"],
    "binary": ["product binary: docker-compose.yml: binary content: a NUL byte at line 3, column 1 (byte offset 8); "
               "a product file is YAML text"],
    "huge": ["product huge: product.yml: larger than 512 KiB (524,288 bytes), the most a product file may have"],
    "escape-code": ["product escape-code: product.yml: binary content: U+001B (a control character) at line 1, "
                    "column 7; a product file is YAML text"],
    "link-outside": ["product link-outside: product.yml is a symbolic link to ../../outside.yml, outside products/"],
    "link-absolute": ["product link-absolute: docker-compose.yml is a symbolic link to /etc/passwd, outside products/"],
    "link-loop": ["product link-loop: product.yml is a symbolic link loop (product.yml -> product.yml -> product.yml "
                  "-> ...)"],
    "link-dangling": ["product link-dangling: product.yml is a symbolic link to nowhere.yml, which does not exist"],
    "missing": ["product missing: docker-compose.yml is missing"],
    "folder-file": ["product folder-file: product.yml is a folder, not a file"],
    "escape": ["product escape: products/escape is a symbolic link to ../.., outside products/"],
    "Bad Name": [f"product Bad Name: {SLUG_RULE}it has capital letters, spaces"],
    "x" * 100: [f"product {'x' * 100}: {SLUG_RULE}it has 100 characters"],
    "d\\xe9p\\xf4t": [f"product d\\xe9p\\xf4t: {SLUG_RULE}it has bytes that are not UTF-8 (shown as \\xNN) or "
                      "invisible characters"],
    printable_name(LONG_LATIN1_NAME): [f"product {printable_name(LONG_LATIN1_NAME)}: {SLUG_RULE}it has bytes that are "
                                       "not UTF-8 (shown as \\xNN) or invisible characters"],
    "new\\x0aline": [f"product new\\x0aline: {SLUG_RULE}it has bytes that are not UTF-8 (shown as \\xNN) or invisible "
                     "characters"],
}
EXPECTED_VALID = ["alias", "good", "link-inside"]


def write_layout(root: Path, files: dict[str, bytes | Symlink]) -> Path:
    for path, content in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            os.symlink(content.target, full)
        else:
            full.write_bytes(content)
    return root


@pytest.fixture
def bad_repo(tmp_path) -> Path:
    return write_layout(tmp_path / "bad-repo", layout())


@pytest.fixture
def live_local(settings, bad_repo):
    live = bootstrap(dataclasses.replace(settings, config_repo=bad_repo))
    upgrade(live.db)
    yield live
    if not live.db.is_closed():
        live.db.close()


@pytest.fixture
def gitlab():
    emulator = GitLabEmulator().start()
    emulator.repo.commit(layout(), message="a catalog with bad files")
    yield emulator
    emulator.stop()


@pytest.fixture
def live_gitlab(settings, gitlab):
    live = bootstrap(dataclasses.replace(settings, gitlab_url=gitlab.url, gitlab_token=gitlab.token,
                                         gitlab_project=gitlab.project_path, gitlab_ref="main", gitlab_timeout=5.0))
    upgrade(live.db)
    yield live
    if not live.db.is_closed():
        live.db.close()


def assert_synced_with_named_errors(report) -> None:
    assert report.invalid == EXPECTED_INVALID
    assert sorted(report.added) == EXPECTED_VALID and report.unrecorded == []
    stored = {p.slug: (p.valid, p.errors) for p in Product.select()}
    assert stored == {**{slug: (False, errors) for slug, errors in EXPECTED_INVALID.items()},
                      **{slug: (True, []) for slug in EXPECTED_VALID}}
    alias = Product.get(Product.slug == "alias").current_revision
    assert alias.manifest == GOOD_MANIFEST and alias.compose == GOOD_COMPOSE


# -- the same bad repository from both sources ---------------------------------------------------------

def test_local_folder_lists_each_bad_product_invalid_and_syncs_the_others(live_local):
    assert_synced_with_named_errors(live_local.catalog.sync())


def test_gitlab_lists_the_same_products_invalid_with_the_same_errors(live_gitlab, gitlab):
    assert_synced_with_named_errors(live_gitlab.catalog.sync())
    # Blob ids are recorded only for files that were read; an unreadable one is fetched again, never trusted.
    latin1 = ProductRevision.select().join(Product).where(Product.slug == "latin1").get()
    assert latin1.manifest_blob is None and latin1.compose_blob == blob_id(GOOD_COMPOSE.encode())


def test_a_long_or_undecodable_folder_name_is_stored_as_printable_text(live_local):
    live_local.catalog.sync()
    long_slug = printable_name(LONG_LATIN1_NAME)
    assert len(long_slug) == 255 and long_slug.startswith("\\xe9" * 50)
    assert Product.get(Product.slug == long_slug).valid is False  # PostgreSQL: varchar(255) since migration 0004
    assert Product.get(Product.slug == "d\\xe9p\\xf4t").name == "Good"  # the manifest was readable


def test_fixing_a_file_makes_the_product_valid_and_each_bad_state_is_its_own_revision(live_local, bad_repo):
    live_local.catalog.sync()
    manifest = bad_repo / "products" / "latin1" / "product.yml"
    manifest.write_bytes(b"name: x\x00\nplans:\n  basic:\n")
    report = live_local.catalog.sync()
    assert report.invalid["latin1"] == ["product latin1: product.yml: binary content: a NUL byte at line 1, "
                                        "column 8 (byte offset 7); a product file is YAML text"]
    revisions = ProductRevision.select().join(Product).where(Product.slug == "latin1").order_by(ProductRevision.id)
    assert [r.errors for r in revisions] == [EXPECTED_INVALID["latin1"], report.invalid["latin1"]]
    manifest.write_text("name: Dépôt\nplans:\n  basic:\n", encoding="utf-8")
    report = live_local.catalog.sync()
    assert "latin1" in report.changed or "latin1" in report.added
    product = Product.get(Product.slug == "latin1")
    assert product.valid and product.name == "Dépôt"


def test_gitlab_streams_a_huge_blob_and_stops_reading(gitlab):
    huge = b"name: x\n" + b"#" * (64 * 1024 * 1024)
    gitlab.repo.commit({"products/huge/product.yml": huge, "products/huge/docker-compose.yml": GOOD_COMPOSE})
    [item] = GitLabSource(gitlab.url, gitlab.token, gitlab.project_path, "main").read()
    assert item.problems == ("product huge: product.yml: larger than 512 KiB (524,288 bytes), the most a product "
                             "file may have",)
    path = next(p for p in gitlab.sent if blob_id(huge) in p)
    assert gitlab.sent[path] < len(huge) // 4, "the download was not cut short"


def test_gitlab_never_trusts_a_lossy_copy_of_a_blob_from_the_database(gitlab):
    source = GitLabSource(gitlab.url, gitlab.token, gitlab.project_path, "main")
    latin1 = layout()["products/latin1/product.yml"]
    source.remember(blob_id(latin1), latin1.decode("utf-8", errors="replace"))  # what older versions stored
    source.remember(blob_id(GOOD_COMPOSE.encode()), GOOD_COMPOSE)
    items = {item.slug: item for item in source.read()}
    assert items["latin1"].problems == tuple(EXPECTED_INVALID["latin1"])
    assert gitlab.count(f"/blobs/{blob_id(GOOD_COMPOSE.encode())}/") == 0  # an exact copy is used


# -- faults only a local folder can have -----------------------------------------------------------------

def test_a_fifo_is_refused_without_blocking(live_local, bad_repo):
    folder = bad_repo / "products" / "fifo"
    folder.mkdir()
    (folder / "product.yml").write_text(GOOD_MANIFEST)
    os.mkfifo(folder / "docker-compose.yml")
    report = live_local.catalog.sync()
    assert report.invalid["fifo"] == ["product fifo: docker-compose.yml is not a regular file (a FIFO)"]
    assert "good" in report.added


def read_as_nobody(root: Path) -> list[SourceProduct]:
    """LocalFolderSource(root).read() in a child process without root's privileges (permissions then apply)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, read, send the result back
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            data = pickle.dumps(LocalFolderSource(root).read())
            with os.fdopen(writer, "wb") as out:
                out.write(data)
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as incoming:
        data = incoming.read()
    os.waitpid(pid, 0)
    assert data, "the child could not read the folder"
    return pickle.loads(data)


class Replay:
    """A source answering with products read elsewhere (here: by an unprivileged process)."""

    def __init__(self, root: Path, items: list[SourceProduct]):
        self.root, self.items = root, items

    def describe(self) -> str:
        return f"folder {self.root} (read as nobody)"

    def read(self) -> list[SourceProduct]:
        return self.items


def test_unreadable_files_and_folders_are_named(live_local):
    root = Path(tempfile.mkdtemp(prefix="live-unreadable-", dir="/tmp"))
    try:
        root.chmod(0o755)
        write_layout(root, {"products/good/product.yml": GOOD_MANIFEST.encode(),
                            "products/good/docker-compose.yml": GOOD_COMPOSE.encode(),
                            "products/secret/product.yml": GOOD_MANIFEST.encode(),
                            "products/secret/docker-compose.yml": GOOD_COMPOSE.encode(),
                            "products/locked/product.yml": GOOD_MANIFEST.encode()})
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "products" / "secret" / "product.yml").chmod(0)
        (root / "products" / "locked").chmod(0)
        if os.geteuid() == 0:
            items = read_as_nobody(root)  # root reads anything: the permission check needs another user
        else:
            items = LocalFolderSource(root).read()
        report = Catalog(Replay(root, items)).sync()
        assert report.invalid == {
            "locked": ["product locked: product.yml: cannot be read: permission denied",
                       "product locked: docker-compose.yml: cannot be read: permission denied"],
            "secret": ["product secret: product.yml: cannot be read: permission denied"],
        }
        assert report.added == ["good"]
    finally:
        (root / "products" / "locked").chmod(0o755)
        shutil.rmtree(root)


# -- what the database refuses, from a source that does not check (one that is not ours) -----------------

class Unchecked:
    """A third-party source handing over text the readers of this project would refuse."""

    def describe(self) -> str:
        return "unchecked source"

    def read(self) -> list[SourceProduct]:
        return [
            SourceProduct("good", GOOD_MANIFEST, GOOD_COMPOSE),
            SourceProduct("nul-text", "name: a\x00b\nplans:\n  basic:\n", GOOD_COMPOSE),  # PostgreSQL refuses NUL
            SourceProduct("bad\udce9slug", GOOD_MANIFEST, GOOD_COMPOSE),  # no database stores a lone surrogate
        ]


def test_a_product_the_database_refuses_never_aborts_the_sync(live_local, database_url):
    report = Catalog(Unchecked()).sync()
    assert report.added == ["good"] and report.unrecorded == ["bad\udce9slug"]
    assert any("could not be recorded" in error for error in report.invalid["bad\udce9slug"])
    nul = Product.get(Product.slug == "nul-text")
    assert not nul.valid and "invalid YAML" in nul.errors[0]
    if database_url.startswith("postgresql"):  # recorded without its files, saying why
        assert "could not be recorded: ValueError" in nul.errors[-1]
        assert nul.revisions.get().manifest == ""
    assert Product.get(Product.slug == "good").valid


# -- the command line ----------------------------------------------------------------------------------------

@pytest.fixture
def cli(settings, bad_repo):
    app = create_app(dataclasses.replace(settings, config_repo=bad_repo))
    runner = app.test_cli_runner()

    def invoke(*args):
        result = runner.invoke(args=["live", *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
        assert "Traceback" not in result.output
        return result

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def test_cli_validate_list_show_and_sync_report_bad_files_without_a_traceback(cli, bad_repo):
    validated = cli("products", "validate")
    assert validated.exit_code == 1
    assert "ok      good (1 plan(s), 1 service(s))" in validated.output and "ok      alias" in validated.output
    for slug, errors in EXPECTED_INVALID.items():
        assert f"INVALID {slug}\n" in validated.output
        assert all(f"  - {error}\n" in validated.output for error in errors)

    one = cli("products", "validate", str(bad_repo / "products" / "latin1"))
    assert one.exit_code == 1 and EXPECTED_INVALID["latin1"][0] in one.output
    assert cli("products", "validate", str(bad_repo / "products" / "alias")).exit_code == 0
    linked = cli("products", "validate", str(bad_repo / "products" / "escape"))
    assert linked.exit_code == 1 and "products/escape is a symbolic link to ../.., outside products/" in linked.output

    synced = cli("products", "sync")
    assert synced.exit_code == 0 and "INVALID latin1:" in synced.output
    assert "added: alias, good, link-inside" in synced.output
    listed = cli("products", "list")
    assert listed.exit_code == 0 and "INVALID (1 error(s))" in listed.output and "d\\xe9p\\xf4t" in listed.output
    shown = cli("products", "show", "huge")
    assert shown.exit_code == 0 and f"ERROR: {EXPECTED_INVALID['huge'][0]}" in shown.output


def test_cli_when_the_source_cannot_be_read(cli, bad_repo):
    assert cli("products", "sync").exit_code == 0
    shutil.rmtree(bad_repo / "products")
    synced = cli("products", "sync")
    assert synced.exit_code == 1
    assert synced.output.strip().splitlines() == [f"Error: {bad_repo / 'products'} does not exist: the config "
                                                  "repository needs a products/ folder"]
    listed = cli("products", "list")
    assert listed.exit_code == 0 and "warning: the catalog was not synced" in listed.output
    assert "good" in listed.output  # what the catalog knew
    assert "good" in cli("products", "show", "good").output
    validated = cli("products", "validate")
    assert validated.exit_code == 1 and "needs a products/ folder" in validated.output


def test_cli_names_an_unexpected_failure_of_the_source_in_one_line(settings, bad_repo):
    app = create_app(dataclasses.replace(settings, config_repo=bad_repo))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["live", "db", "upgrade"]).exit_code == 0
    app.extensions["live"].catalog.source = Crashing()
    synced = runner.invoke(args=["live", "products", "sync"])
    assert isinstance(synced.exception, SystemExit) and synced.exit_code == 1
    assert synced.output.startswith("Error: reading the catalog failed (UnicodeDecodeError: 'utf-8' codec can't decode")
    assert len(synced.output.strip().splitlines()) == 1
    listed = runner.invoke(args=["live", "products", "list"])
    assert listed.exit_code == 0 and "warning: the catalog was not synced (reading the catalog failed" in listed.output


# -- the worker ------------------------------------------------------------------------------------------------

def test_the_worker_start_up_sync_survives_bad_content(live_local):
    worker = live_local.worker()
    assert worker.sync_catalog_safely() is None  # returns: the worker goes on to schedule its jobs
    assert Product.get(Product.slug == "good").valid and not Product.get(Product.slug == "latin1").valid


class Crashing:
    """A source that fails the way the local folder did before issue 9 (read_text on a Latin-1 file)."""

    def describe(self) -> str:
        return "crashing source"

    def read(self):
        return "name: Dépôt\n".encode("latin-1").decode("utf-8")


def test_the_worker_survives_a_source_that_crashes(live_local, caplog):
    worker = live_local.worker()
    worker.catalog.source = Crashing()
    with caplog.at_level(logging.ERROR, logger="app.orders.worker"):
        worker.sync_catalog_safely()
    [record] = [r for r in caplog.records if "catalog sync crashed" in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is UnicodeDecodeError


def test_the_layout_really_holds_symbolic_links(bad_repo):
    """The links the tests above follow are links on disk (guards write_layout)."""
    assert stat.S_ISLNK(os.lstat(bad_repo / "products" / "alias").st_mode)
    assert stat.S_ISLNK(os.lstat(bad_repo / "products" / "link-inside" / "product.yml").st_mode)
