"""Reading product files (app/catalog/files.py): bytes to text, names, symbolic links, on real folders."""
from __future__ import annotations

import codecs
import os

import pytest

from app.catalog.files import (
    MAX_FILE_BYTES,
    MAX_LINKS,
    MAX_NAME_CHARS,
    decode_product_file,
    printable_name,
    read_file,
    resolve,
)
from app.catalog.product import load_product_folder
from app.catalog.source import LocalFolderSource, LocalRepositoryView
from app.errors import CatalogSourceError, UnreadableFile

GOOD_MANIFEST = "name: Good\nplans:\n  basic:\n"
GOOD_COMPOSE = "services:\n  web:\n    image: busybox\n"


# -- bytes to text ----------------------------------------------------------------------------

def test_utf8_text_is_decoded_and_a_bom_dropped():
    assert decode_product_file("name: Dépôt\n".encode()) == "name: Dépôt\n"
    assert decode_product_file(codecs.BOM_UTF8 + b"name: x\n") == "name: x\n"
    assert decode_product_file(b"a:\tb\r\n") == "a:\tb\r\n"


def test_latin1_names_the_byte_its_position_and_what_to_do():
    with pytest.raises(UnreadableFile) as info:
        decode_product_file("plans: {}\nname: Dépôt\n".encode("latin-1"))
    assert str(info.value) == ("not UTF-8: byte 0xE9 at line 2, column 8 (byte offset 17) is not valid UTF-8; "
                               "save the file as UTF-8")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_are_named(encoding):
    with pytest.raises(UnreadableFile, match="is UTF-16 or UTF-32 .*; save it as UTF-8"):
        decode_product_file("name: x\n".encode(encoding))


@pytest.mark.parametrize("data, what", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a NUL byte at line 3, column 1 (byte offset 8)"),
    (b"name: a\x00b\n", "a NUL byte at line 1, column 8 (byte offset 7)"),
    ("name: é\x00".encode("latin-1"), "a NUL byte at line 1, column 8 (byte offset 7)"),
])
def test_a_nul_byte_is_binary_content_whatever_the_encoding(data, what):
    with pytest.raises(UnreadableFile) as info:
        decode_product_file(data)
    assert str(info.value) == f"binary content: {what}; a product file is YAML text"


@pytest.mark.parametrize("data, code, where", [
    (b"name: \x1b[31mred\n", "U+001B", "line 1, column 7"),
    (b"a: 1\nb: \x7f\n", "U+007F", "line 2, column 4"),
    ("a: \u0085ok \u0090\n".encode(), "U+0090", "line 1, column 8"),
])
def test_binary_content_and_control_characters_are_refused(data, code, where):
    with pytest.raises(UnreadableFile) as info:
        decode_product_file(data)
    assert str(info.value).startswith(f"binary content: {code} (a control character) at {where}")


def test_size_bound_is_exact():
    limit = b"#" * (MAX_FILE_BYTES - 1) + b"\n"
    assert len(decode_product_file(limit)) == MAX_FILE_BYTES
    with pytest.raises(UnreadableFile, match="larger than 512 KiB"):
        decode_product_file(limit + b"x")


# -- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, printable", [
    ("geoserver", "geoserver"),
    ("Dépôt", "Dépôt"),
    (os.fsdecode("d\xe9p\xf4t".encode("latin-1")), "d\\xe9p\\xf4t"),  # bytes that are not UTF-8
    ("new\nline", "new\\x0aline"),
    ("tab\tand\u00a0nbsp", "tab\\x09and\\xa0nbsp"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("back\\slash", "back\\\\slash"),
    ("lone\ud800", "lone\\ud800"),
])
def test_printable_name(raw, printable):
    assert printable_name(raw) == printable
    printable.encode("utf-8")  # storable anywhere


def test_printable_names_never_collide_with_escapes_written_by_hand():
    assert printable_name("d\\xe9") != printable_name(os.fsdecode(b"d\xe9"))


def test_long_names_are_cut_with_a_digest():
    first, second = printable_name("a" * 300), printable_name("a" * 299 + "b")
    assert len(first) == len(second) == MAX_NAME_CHARS and first != second
    assert first.startswith("a" * 200) and "…" in first


# -- symbolic links and kinds of files, on a real folder --------------------------------------------

@pytest.fixture
def repo(tmp_path):
    """A repository with products/good and a file outside products/."""
    products = tmp_path / "products"
    (products / "good").mkdir(parents=True)
    (products / "good" / "product.yml").write_text(GOOD_MANIFEST)
    (products / "good" / "docker-compose.yml").write_text(GOOD_COMPOSE)
    (tmp_path / "outside.yml").write_text(GOOD_MANIFEST)
    return tmp_path


def link(repo, path: str, target: str) -> None:
    full = repo / path
    full.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, full)


def problem(repo, path: str) -> str | None:
    return read_file(LocalRepositoryView(repo / "products"), path).problem


@pytest.mark.parametrize("target", ["../good/product.yml", "../../products/good/product.yml", "./../good/./product.yml",
                                    "../good/../good/product.yml"])
def test_links_inside_products_are_followed(repo, target):
    link(repo, "products/x/product.yml", target)
    view = LocalRepositoryView(repo / "products")
    assert resolve(view, "products/x/product.yml") == "products/good/product.yml"
    assert read_file(view, "products/x/product.yml").text == GOOD_MANIFEST


def test_a_chain_of_links_is_followed(repo):
    link(repo, "products/x/a.yml", "../good/product.yml")
    link(repo, "products/x/b.yml", "a.yml")
    link(repo, "products/x/product.yml", "b.yml")
    assert read_file(LocalRepositoryView(repo / "products"), "products/x/product.yml").text == GOOD_MANIFEST


@pytest.mark.parametrize("target, shown", [
    ("../../outside.yml", "../../outside.yml"),
    ("/etc/passwd", "/etc/passwd"),
    ("../../../../../../etc/passwd", "../../../../../../etc/passwd"),
    ("../../products/../outside.yml", "../../products/../outside.yml"),
])
def test_links_leaving_products_are_refused(repo, target, shown):
    link(repo, "products/x/product.yml", target)
    assert problem(repo, "products/x/product.yml") == f"is a symbolic link to {shown}, outside products/"


def test_a_chain_that_leaves_products_names_every_step(repo):
    link(repo, "products/x/product.yml", "step.yml")
    link(repo, "products/x/step.yml", "../../outside.yml")
    assert problem(repo, "products/x/product.yml") == \
        "is a symbolic link to step.yml -> ../../outside.yml, outside products/"


def test_link_loops_are_refused(repo):
    link(repo, "products/x/product.yml", "product.yml")
    assert problem(repo, "products/x/product.yml").startswith("is a symbolic link loop (product.yml -> product.yml")
    link(repo, "products/y/a.yml", "b.yml")
    link(repo, "products/y/b.yml", "a.yml")
    link(repo, "products/y/product.yml", "a.yml")
    assert "loop" in problem(repo, "products/y/product.yml")


def test_a_long_chain_is_a_loop(repo):
    (repo / "products" / "x").mkdir()
    for number in range(MAX_LINKS + 1):
        os.symlink(f"l{number + 1}.yml", repo / "products" / "x" / f"l{number}.yml")
    (repo / "products" / "x" / f"l{MAX_LINKS + 1}.yml").write_text(GOOD_MANIFEST)
    assert "loop" in problem(repo, "products/x/l0.yml")
    assert read_file(LocalRepositoryView(repo / "products"), "products/x/l2.yml").text == GOOD_MANIFEST


def test_dangling_links_and_missing_files(repo):
    link(repo, "products/x/product.yml", "nowhere.yml")
    assert problem(repo, "products/x/product.yml") == "is a symbolic link to nowhere.yml, which does not exist"
    assert problem(repo, "products/x/docker-compose.yml") == "is missing"


def test_a_folder_a_fifo_and_a_link_through_a_file_are_not_files(repo):
    (repo / "products" / "x" / "product.yml").mkdir(parents=True)
    assert problem(repo, "products/x/product.yml") == "is a folder, not a file"
    os.mkfifo(repo / "products" / "x" / "docker-compose.yml")
    assert problem(repo, "products/x/docker-compose.yml") == "is not a regular file (a FIFO)"
    link(repo, "products/y/product.yml", "../good/product.yml/inner")
    assert problem(repo, "products/y/product.yml") == \
        "is a symbolic link to ../good/product.yml/inner, which does not exist"


def test_product_folder_links(repo):
    link(repo, "products/alias", "good")
    link(repo, "products/escape", "/etc")
    link(repo, "products/readme", "good/product.yml")  # a link to a file is not a product, like a file
    (repo / "products" / "NOTES.md").write_text("notes")
    items = {item.slug: item for item in LocalFolderSource(repo).read()}
    assert set(items) == {"alias", "escape", "good"}
    assert items["alias"].problems == () and items["alias"].manifest_text == GOOD_MANIFEST
    assert items["escape"].problems == \
        ("product escape: products/escape is a symbolic link to /etc, outside products/",)


def test_missing_products_folder_is_the_sources_error(tmp_path):
    with pytest.raises(CatalogSourceError, match="needs a products/ folder"):
        LocalFolderSource(tmp_path).read()


def test_huge_file_is_not_read_whole(repo):
    with open(repo / "products" / "good" / "product.yml", "ab") as handle:
        handle.truncate(8 * 1024 ** 3)  # 8 GiB, sparse: reading it whole would take the machine down
    item = {i.slug: i for i in LocalFolderSource(repo).read()}["good"]
    assert item.problems == ("product good: product.yml: larger than 512 KiB (524,288 bytes), the most a product "
                             "file may have",)


def test_load_product_folder_reads_like_the_source(repo):
    (repo / "products" / "good" / "product.yml").write_bytes("name: Dépôt\nplans:\n  basic:\n".encode("latin-1"))
    product = load_product_folder(repo / "products" / "good")
    assert product.errors == ["product good: product.yml: not UTF-8: byte 0xE9 at line 1, column 8 (byte offset 7) "
                              "is not valid UTF-8; save the file as UTF-8"]
