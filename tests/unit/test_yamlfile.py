"""The product-file YAML reader (app/yamlfile.py): what the author typed is what it returns."""
from __future__ import annotations

import copy
import datetime as dt
import pickle
import textwrap

import pytest
import yaml

from app.errors import YamlContentError
from app.yamlfile import (
    MAX_DEPTH,
    MAX_VALUES,
    KeptText,
    canonical_text,
    load_yaml,
    typed_field_hint,
    yaml11_reading,
)


def value(text: str):
    """The value of ``v: <text>`` as the reader returns it."""
    return load_yaml(f"v: {text}\n")["v"]


# -- plain scalars whose canonical text is what was typed keep their type ------------------

@pytest.mark.parametrize("text, expected", [
    ("8080", 8080), ("0", 0), ("-5", -5), ("123456789012345678901234567890", 123456789012345678901234567890),
    ("0.5", 0.5), ("1.0", 1.0), ("-2.25", -2.25), ("0.0001", 0.0001),
    ("true", True), ("false", False),
])
def test_canonical_scalars_keep_their_type(text, expected):
    result = value(text)
    assert result == expected and type(result) is type(expected)
    assert canonical_text(result) == text


# -- every other plain scalar YAML 1.1 would bend stays the author's text ------------------

KEPT = [
    # YAML 1.1 booleans other than true/false
    ("yes", True), ("Yes", True), ("YES", True), ("no", False), ("No", False), ("NO", False),
    ("on", True), ("On", True), ("ON", True), ("off", False), ("Off", False), ("OFF", False),
    ("True", True), ("TRUE", True), ("False", False), ("FALSE", False),
    # integers: octal, hexadecimal, binary, underscores, signs, base 60
    ("0022", 18), ("0755", 493), ("010", 8), ("00", 0), ("0x1F", 31), ("0xff", 255), ("0b101", 5),
    ("1_000", 1000), ("+5", 5), ("-0", 0), ("+0", 0), ("12:30", 750), ("1:00:00", 3600), ("-1:30", -90),
    # floats whose text differs from Python's
    ("13.10", 13.1), ("1.50", 1.5), ("1.", 1.0), (".5", 0.5), ("+1.5", 1.5), ("1_000.5", 1000.5),
    ("1.5e+3", 1500.0), ("1.0e-7", 1e-07), ("100000000000000000000.0", 1e20), ("190:20:30.15", 685230.15),
    # dates and times
    ("2024-01-01", dt.date(2024, 1, 1)),
    ("2001-12-14t21:59:43.10-05:00", dt.datetime(2001, 12, 15, 2, 59, 43, 100000, tzinfo=dt.timezone.utc)),
    ("2001-12-14 21:59:43.10 -5", dt.datetime(2001, 12, 15, 2, 59, 43, 100000, tzinfo=dt.timezone.utc)),
]


@pytest.mark.parametrize("text, yaml11", KEPT, ids=[t for t, _ in KEPT])
def test_other_plain_scalars_stay_the_authors_text(text, yaml11):
    result = value(text)
    assert isinstance(result, KeptText) and result == text and result.source == text
    assert result.yaml11 == yaml11 and type(result.yaml11) is type(yaml11)
    assert (result.line, result.column) == (1, 4)


@pytest.mark.parametrize("text", [".inf", "-.inf", ".Inf", ".NaN", ".nan"])
def test_infinities_and_nan_stay_text(text):
    result = value(text)
    assert isinstance(result, KeptText) and result == text


@pytest.mark.parametrize("text", ["08080", "09", "1e3", "0o17", "=", "<<", "._", "hello", "1.2.3", "0b_", "a: b"])
def test_text_yaml_does_not_type_is_plain_text(text):
    result = load_yaml(f"v: {text!r}\n")["v"] if text == "a: b" else value(text)
    assert result == text and type(result) is str


@pytest.mark.parametrize("text", ["null", "Null", "NULL", "~", ""])
def test_null_spellings_stay_none(text):
    assert value(text) is None


@pytest.mark.parametrize("text", ["'yes'", '"13.10"', "'0022'", '"~"', "'null'", '""', "|\n  yes\n", ">-\n  0022\n"])
def test_quoted_and_block_scalars_are_text(text):
    result = value(text)
    assert type(result) is str
    assert result == yaml.safe_load(f"v: {text}\n")["v"]


# -- explicit tags are what the author asked for ---------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("!!int 0022", 18), ("!!int 0x1F", 31), ("!!float 13.10", 13.1), ("!!float 1", 1.0), ("!!bool yes", True),
    ("!!str yes", "yes"), ("!!str 0022", "0022"), ("!!null ''", None), ("! 123", "123"),
])
def test_explicit_core_tags_are_honoured(text, expected):
    result = value(text)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("text, message", [
    ("!!int abc", "!!int 'abc' is not an integer"),
    ("!!float x", "!!float 'x' is not a number"),
    ("!!bool maybe", "!!bool 'maybe' is not a boolean"),
])
def test_explicit_tags_on_text_they_cannot_read_are_refused(text, message):
    with pytest.raises(YamlContentError, match="line 1, column 4: " + message):
        value(text)


@pytest.mark.parametrize("text, tag", [
    ("!!binary aGVsbG8=", "!!binary"), ("!!timestamp 2024-01-01", "!!timestamp"), ("!custom x", "!custom"),
    ("!!python/object/apply:os.system ['true']", "!!python/object/apply:os.system"), ("!!set {a, b}", "!!set"),
    ("!!omap [{a: 1}]", "!!omap"), ("!!pairs [{a: 1}]", "!!pairs"),
    ("!!python/name:os.system ''", "!!python/name:os.system"),
    ("!!merge x", "!!merge"), ("!!value =", "!!value"), ("!!str [a]", "!!str"), ("!!map [a]", "!!map"),
])
def test_tags_outside_the_core_set_are_refused_with_path_and_position(text, tag):
    with pytest.raises(YamlContentError) as info:
        load_yaml(f"services:\n  web:\n    x: {text}\n")
    message = str(info.value)
    assert message.startswith("services.web.x: tag ") and f"tag {tag} " in message and "line 3, column 8" in message


# -- keys --------------------------------------------------------------------------------------

def test_keys_are_always_the_authors_text():
    document = load_yaml("1: a\n01: b\nyes: c\n~: d\n2024-01-01: e\n1.10: f\n!!int 7: g\n'q': h\n")
    assert list(document) == ["1", "01", "yes", "~", "2024-01-01", "1.10", "7", "q"]
    assert all(type(key) is str for key in document)


@pytest.mark.parametrize("text", ["? [a, b]\n: 1\n", "? {a: 1}\n: 1\n"])
def test_keys_that_are_lists_or_mappings_are_refused(text):
    with pytest.raises(YamlContentError, match="keys must be text"):
        load_yaml("x:\n  " + text.replace("\n", "\n  "))


@pytest.mark.parametrize("text, key, lines", [
    ("image: a\nimage: b\n", "image", (1, 2)),
    ("yes: 1\n'yes': 2\n", "yes", (1, 2)),  # the same text, quoted or not
    ("a: 1\nb: 2\n\na: 3\n", "a", (1, 4)),
    ("services:\n  web:\n    image: a\n    init: true\n    image: b\n", "image", (3, 5)),
    ("x: {a: 1, a: 2}\n", "a", (1, 1)),
])
def test_duplicate_keys_name_the_key_and_both_lines(text, key, lines):
    with pytest.raises(YamlContentError) as info:
        load_yaml(text)
    assert f"key {key!r} appears twice, at lines {lines[0]} and {lines[1]}" in str(info.value)
    assert "remove one" in str(info.value)


@pytest.mark.parametrize("key, code", [('"a\\x1b[2Jb"', "U+001B"), ('"new\\nline"', "U+000A"),
                                       ('"nb\\u00a0sp"', "U+00A0"), ('"\\udce9"', "U+DCE9")])
def test_keys_with_invisible_or_control_characters_are_refused(key, code):
    with pytest.raises(YamlContentError) as info:
        load_yaml(f"services:\n  {key}: {{image: x}}\n")
    message = str(info.value)
    assert message.startswith("services: the key ") and f"line 2, column 3 contains {code}" in message
    assert message.isprintable()


def test_duplicate_key_reports_its_path():
    with pytest.raises(YamlContentError, match=r"^services\.web: key 'image' appears twice"):
        load_yaml("services:\n  web:\n    image: a\n    image: b\n")


# -- merge keys and anchors ----------------------------------------------------------------------

def test_merge_keys_keep_working_and_explicit_keys_win():
    document = load_yaml(textwrap.dedent("""\
        x-defaults: &defaults
          image: busybox
          init: true
          environment: {A: "1", B: "2"}
        x-more: &more
          stop_signal: SIGINT
          init: false
        services:
          web:
            <<: *defaults
            init: false
          app:
            <<: [*more, *defaults]
            image: other
        """))
    assert document["services"]["web"] == {"image": "busybox", "init": False, "environment": {"A": "1", "B": "2"}}
    # In a list of merges the first one wins (YAML merge spec); explicit keys win over all of them.
    assert document["services"]["app"] == {"image": "other", "init": False, "stop_signal": "SIGINT",
                                           "environment": {"A": "1", "B": "2"}}


def test_a_key_that_overrides_a_merged_key_is_not_a_duplicate():
    assert load_yaml("a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n")["b"] == {"x": 2}


def test_quoted_merge_key_is_an_ordinary_key():
    assert load_yaml("a: &a {x: 1}\nb:\n  '<<': *a\n")["b"] == {"<<": {"x": 1}}


def test_aliases_to_scalars_and_lists_work():
    document = load_yaml("a: &v yes\nb: *v\nc: &l [1, 2]\nd: *l\n")
    assert document == {"a": "yes", "b": "yes", "c": [1, 2], "d": [1, 2]}
    assert isinstance(document["b"], KeptText)


def test_alias_bomb_is_refused_before_expansion():
    levels = ["x-0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    for level in range(1, 9):
        levels.append(f"x-{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    with pytest.raises(YamlContentError) as info:
        load_yaml("\n".join(levels) + "\n")
    message = str(info.value)
    assert f"more than {MAX_VALUES:,} values" in message and message.startswith("x-")


def test_many_aliases_below_the_bound_are_fine():
    # 9 * 9 * 9 * 9 = 6561 expanded values: shared, legitimate reuse.
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
    for name, previous in (("b", "a"), ("c", "b"), ("d", "c")):
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
    assert len(load_yaml(text)["d"]) == 9


def test_a_value_that_contains_itself_is_refused():
    with pytest.raises(YamlContentError, match="a value cannot contain itself"):
        load_yaml("a: &a [1, *a]\n")
    with pytest.raises(YamlContentError, match="a value cannot contain itself"):
        load_yaml("a: &a {b: {c: *a}}\n")


def test_nesting_is_bounded_in_the_text_and_through_aliases():
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(YamlContentError, match=f"deeper than {MAX_DEPTH} levels"):
        load_yaml(f"a: {deep}\n")
    half = "[" * 40 + "1" + "]" * 40
    text = f"a: &a {half}\nb: &b {'[' * 30}*a{']' * 30}\n"
    with pytest.raises(YamlContentError, match=f"deeper than {MAX_DEPTH} levels"):
        load_yaml(text)
    assert load_yaml(f"a: {'[' * 30}1{']' * 30}\n")["a"]


@pytest.mark.parametrize("escape, code, why", [
    ("\\0", "U+0000", "which no container or database can store"),
    ("\\ud800", "U+D800", "which no container or database can store"),
    ("\\x00", "U+0000", "which no container or database can store"),
    ("\\e[2J", "U+001B", "a control character; a product file holds text"),
    ("\\a", "U+0007", "a control character; a product file holds text"),
    ("\\x9b", "U+009B", "a control character; a product file holds text"),
])
def test_escapes_giving_what_a_product_file_may_not_hold_are_refused(escape, code, why):
    with pytest.raises(YamlContentError) as info:
        load_yaml(f'environment: {{X: "a{escape}b"}}\n')
    assert str(info.value) == f"environment.X: the value at line 1, column 18 contains {code} (written as an escape), " \
                              f"{why}; remove it"


def test_ordinary_escapes_are_fine():
    assert load_yaml('v: "tab\\there\\nnewline \\u00e9"\n')["v"] == "tab\there\nnewline é"


def test_text_that_is_not_yaml_is_a_yaml_error_with_a_mark():
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml("a: [unclosed\n")
    assert info.value.problem_mark is not None


def test_several_documents_are_refused():
    with pytest.raises(yaml.YAMLError, match="single document"):
        load_yaml("a: 1\n---\nb: 2\n")


def test_empty_document_is_none():
    assert load_yaml("# nothing\n") is None


# -- KeptText --------------------------------------------------------------------------------------

def test_kept_text_survives_copy_and_pickle_with_its_reading():
    kept = load_yaml("a: 1\nv: 0022\n")["v"]
    for clone in (copy.copy(kept), copy.deepcopy(kept), pickle.loads(pickle.dumps(kept))):
        assert isinstance(clone, KeptText) and clone == "0022"
        assert (clone.yaml11, clone.line, clone.column) == (18, 2, 4)
    assert type(str(kept)) is str and str(kept) == "0022"


# -- hints for typed fields --------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, fragments", [
    ("yes", "boolean", ["'yes' is text here, not a boolean", "YAML 1.1 would have read it as true",
                        "write true or false"]),
    ("True", "boolean", ["would have read it as true", "write true or false"]),
    ("off", "boolean", ["would have read it as false"]),
    ("03", "number", ["'03' is text here, not a number", "as 3, an octal number", "plain decimal number such as 3"]),
    ("0022", "number", ["as 18, an octal number", "such as 18"]),
    ("0x1F", "number", ["as 31, a hexadecimal number", "such as 31"]),
    ("12:30", "number", ["as 750, a base-60 number", "such as 750"]),
    ("08080", "number", ["YAML 1.1 reads it as text too", "such as 8080"]),
    ("1_000", "number", ["as 1000", "such as 1000"]),
    ("2024-01-01", "number", ["as the date 2024-01-01", "write a plain decimal number"]),
    (".inf", "number", ["as infinity"]),
])
def test_typed_field_hint_says_how_yaml_1_1_reads_it_and_what_to_write(text, kind, fragments):
    hint = typed_field_hint(text, kind)
    for fragment in fragments:
        assert fragment in hint, (fragment, hint)


@pytest.mark.parametrize("text, expected", [("yes", True), ("0022", 18), ("12:30", 750), ("08080", "08080"),
                                            ("~", None), ("hello", "hello"), ("13.10", 13.1)])
def test_yaml11_reading(text, expected):
    assert yaml11_reading(text) == expected
