"""The one YAML reader of product files (``product.yml`` and ``docker-compose.yml``).

Built on PyYAML's :class:`yaml.SafeLoader`, with three changes that make sure
what a product author wrote is what deploys:

* **A plain (unquoted) scalar keeps its YAML type only when the type's
  canonical text is exactly what the author typed**: ``8080`` is the integer
  8080, ``0.5`` the float 0.5, ``true``/``false`` booleans. Any other plain
  scalar that YAML 1.1 would turn into something else stays the author's text,
  as a :class:`KeptText` (a ``str`` that also remembers YAML 1.1's reading and
  the position): ``yes``, ``True``, ``13.10``, ``0022``, ``0x1F``, ``1_000``,
  ``12:30``, ``+5``, ``.inf``, ``2024-01-01``. ``null``, ``~`` and empty
  values stay ``None``. Explicitly tagged scalars (``!!int 0022``,
  ``!!str yes``) are what the author asked for.
* **Mapping keys are always text**, exactly as typed (``1:`` is the key
  ``"1"``, ``yes:`` is ``"yes"``); a list or mapping as a key is refused.
* **What YAML silently drops or bends is refused** with a :class:`YamlContentError`
  naming the path and line: duplicate keys, tags outside the core set
  (``!!binary``, ``!!set``, ``!!omap``, ``!!timestamp``, ``!!python/...``,
  ``!custom``), escapes giving what a product file may not hold (U+0000, lone
  surrogates, control characters other than tab, CR and LF), keys with
  invisible or control characters, documents nested deeper than
  :data:`MAX_DEPTH` levels, anchors that contain themselves, and documents
  whose aliases expand to more than :data:`MAX_VALUES` values (the
  "billion laughs"). Merge keys (``<<: *defaults``) keep working.

The YAML 1.1 rules are those of PyYAML's resolver (the YAML 1.1 type
repository, https://yaml.org/type/); "canonical text" is Python's ``str`` of
the value with booleans written ``true``/``false``, which is also how Live
turns a value into text for interpolation.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from app.errors import YamlContentError  # defined with every Live error in app.errors; importable from here

log = logging.getLogger(__name__)

#: At most this many values (scalars, lists and mappings, keys included) after alias expansion.
MAX_VALUES = 100_000
#: At most this many levels of nested lists and mappings, after alias expansion.
MAX_DEPTH = 64
#: What to do about a value that is null (``null``, ``~`` or nothing) where Live needs text.
NULL_HINT = 'give a value, or quote it ("~") if the text is meant'

_CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_CORE + name for name in ("str", "int", "float", "bool", "null"))
SEQ, MAP, MERGE, TIMESTAMP, VALUE = (_CORE + name for name in ("seq", "map", "merge", "timestamp", "value"))
#: Tags an author may write explicitly (the YAML 1.2 core schema).
EXPLICIT_SCALAR_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL})
#: Tags PyYAML's YAML 1.1 resolver gives plain scalars on its own.
IMPLICIT_SCALAR_TAGS = EXPLICIT_SCALAR_TAGS | {MERGE, TIMESTAMP, VALUE}

# Characters a double-quoted escape can produce but a product file may not hold: what YAML does not
# accept as text (the same set app/catalog/files.py refuses in the file itself).
_NOT_TEXT = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # of those, what neither PostgreSQL nor a container takes


class KeptText(str):
    """A plain scalar kept as the author's exact text because YAML 1.1 would have read it differently.

    It is a ``str`` equal to what the author typed, so every text field (an
    environment value, a label, a variable default, an image) uses it as is.
    ``yaml11`` is the value YAML 1.1 gives the same text (``True`` for
    ``yes``, ``13.1`` for ``13.10``, ``18`` for ``0022``, ``750`` for
    ``12:30``, a :class:`datetime.date` for ``2024-01-01``); ``line`` and
    ``column`` are 1-based, as editors count.
    """

    yaml11: Any
    line: int
    column: int

    def __new__(cls, text: str, yaml11: Any = None, line: int = 0, column: int = 0) -> "KeptText":
        obj = super().__new__(cls, text)
        obj.yaml11, obj.line, obj.column = yaml11, line, column
        return obj

    @property
    def source(self) -> str:
        """The text exactly as the author typed it."""
        return str.__str__(self)

    def __reduce__(self):  # copy, deepcopy and pickle keep the reading and the position
        return (KeptText, (self.source, self.yaml11, self.line, self.column))


def canonical_text(value: Any) -> str:
    """The text Live writes for a typed scalar: ``true``/``false``, ``str(int)``, ``repr(float)``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the rules of the module docstring.

    Returns dicts (keys are ``str``), lists, ``str`` (possibly :class:`KeptText`),
    ``int``, ``float``, ``bool`` and ``None``. Raises :class:`yaml.YAMLError`
    for text that is not YAML (with ``problem_mark``), and
    :class:`YamlContentError` for YAML that cannot be read as written.
    """
    loader = ProductYamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_node_graph(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class ProductYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the product-file rules (use :func:`load_yaml`)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    # -- composing: remember explicit tags, bound the nesting ---------------------------
    def compose_node(self, parent, index):  # noqa: D401 (PyYAML's hook)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:  # + 1: the scalars at the deepest level (the graph check is exact)
                mark = self.peek_event().start_mark
                raise YamlContentError(f"line {mark.line + 1}, column {mark.column + 1}: lists and mappings nested "
                                       f"deeper than {MAX_DEPTH} levels; a product file does not need that many")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_scalar_node(self, anchor):
        tag = self.peek_event().tag
        node = super().compose_scalar_node(anchor)
        node.explicit_tag = tag is not None
        if tag == "!":  # the non-specific tag: text, whatever it looks like (YAML 1.1 and 1.2; PyYAML resolves it)
            node.tag = STR
        return node

    # -- constructing -----------------------------------------------------------------
    def construct_mapping(self, node, deep=False):
        """Keys are the author's text; merge keys are applied, later explicit keys win (YAML merge)."""
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_typed_scalar(self, node: ScalarNode) -> Any:
        """int, float, bool (and timestamps) from the YAML 1.1 resolver: typed only when the text is canonical."""
        build = _YAML11_CONSTRUCTORS[node.tag]
        try:
            value = build(self, node)
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
            if getattr(node, "explicit_tag", False):
                raise YamlContentError(f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: "
                                       f"{short_tag(node.tag)} {node.value!r} is not "
                                       f"{_TYPE_NAMES[node.tag]}") from exc
            return node.value  # PyYAML's resolver matched text its constructor cannot read: plain text
        if getattr(node, "explicit_tag", False):
            return value  # the author asked for this type
        if not isinstance(value, (dt.date, dt.datetime)) and canonical_text(value) == node.value:
            return value
        return KeptText(node.value, value, node.start_mark.line + 1, node.start_mark.column + 1)

    def construct_null(self, node: ScalarNode) -> None:
        return None

    def construct_text(self, node: ScalarNode) -> str:
        """Plain scalars YAML 1.1 would give a special meaning as values (``=``, ``<<``) are just text."""
        return node.value

    def construct_unsupported(self, node: Node) -> Any:
        raise YamlContentError(f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: "
                               f"tag {short_tag(node.tag)} is not supported")


_TYPE_NAMES = {INT: "an integer", FLOAT: "a number", BOOL: "a boolean", TIMESTAMP: "a date"}
_YAML11_CONSTRUCTORS = {
    INT: SafeConstructor.construct_yaml_int,
    FLOAT: SafeConstructor.construct_yaml_float,
    BOOL: SafeConstructor.construct_yaml_bool,
    TIMESTAMP: SafeConstructor.construct_yaml_timestamp,
}

ProductYamlLoader.yaml_constructors = {}  # only what is registered below (no binary, set, omap, pairs)
for _tag in (INT, FLOAT, BOOL, TIMESTAMP):
    ProductYamlLoader.add_constructor(_tag, ProductYamlLoader.construct_typed_scalar)
ProductYamlLoader.add_constructor(NULL, ProductYamlLoader.construct_null)
ProductYamlLoader.add_constructor(STR, SafeConstructor.construct_yaml_str)
ProductYamlLoader.add_constructor(VALUE, ProductYamlLoader.construct_text)
ProductYamlLoader.add_constructor(MERGE, ProductYamlLoader.construct_text)
ProductYamlLoader.add_constructor(SEQ, SafeConstructor.construct_yaml_seq)
ProductYamlLoader.add_constructor(MAP, SafeConstructor.construct_yaml_map)
ProductYamlLoader.add_constructor(None, ProductYamlLoader.construct_unsupported)


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:binary`` -> ``!!binary``; local tags (``!custom``) unchanged."""
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


def _at(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def check_node_graph(root: Node) -> None:
    """Refuse what YAML would drop or bend, before anything is constructed.

    One iterative walk over the composed node graph (aliases are shared nodes),
    memoising each node's expanded size and depth, so a document of aliases to
    aliases costs one visit per node. Raises :class:`YamlContentError`.
    """
    memo: dict[int, tuple[int, int]] = {}  # id(node) -> (values after expansion, depth after expansion)
    on_path: set[int] = set()
    stack: list[tuple[Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, finished = stack.pop()
        key = id(node)
        children = _children(node, path)
        if finished:
            on_path.discard(key)
            size = 1 + sum(memo[id(child)][0] for child, _ in children)
            own_level = 0 if isinstance(node, ScalarNode) else 1
            depth = own_level + max((memo[id(child)][1] for child, _ in children), default=0)
            if size > MAX_VALUES:
                raise YamlContentError(f"{_where(path)}aliases expand this value (at {_at(node)}) to more than "
                                       f"{MAX_VALUES:,} values; write the values out, or use fewer aliases")
            if depth > MAX_DEPTH:
                raise YamlContentError(f"{_where(path)}aliases nest lists and mappings deeper than {MAX_DEPTH} levels "
                                       f"(at {_at(node)})")
            memo[key] = (size, depth)
            continue
        if key in memo:
            continue
        _check_node(node, path)
        on_path.add(key)
        stack.append((node, path, True))
        for child, child_path in reversed(children):
            if id(child) in on_path:
                raise YamlContentError(f"{_where(child_path)}an alias refers to the value that contains it "
                                       f"(anchored at {_at(child)}); a value cannot contain itself")
            if id(child) not in memo:
                stack.append((child, child_path, False))


def _children(node: Node, path: str) -> list[tuple[Node, str]]:
    if isinstance(node, SequenceNode):
        return [(item, f"{path}.{index}" if path else str(index)) for index, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        result = []
        for key_node, value_node in node.value:
            text = key_node.value if isinstance(key_node, ScalarNode) else "?"
            result.append((key_node, path))
            result.append((value_node, f"{path}.{text}" if path else text))
        return result
    return []


def _check_node(node: Node, path: str) -> None:
    if isinstance(node, ScalarNode):
        explicit = getattr(node, "explicit_tag", False)
        allowed = EXPLICIT_SCALAR_TAGS if explicit else IMPLICIT_SCALAR_TAGS
        if node.tag not in allowed:
            raise YamlContentError(f"{_where(path)}tag {short_tag(node.tag)} at {_at(node)} is not supported: "
                                   "product files hold text, numbers, true/false, lists and mappings; remove the tag "
                                   "(quote the value if it is text)")
        bad = _NOT_TEXT.search(node.value)
        if bad:
            why = ("which no container or database can store" if _UNSTORABLE.match(bad.group())
                   else "a control character; a product file holds text")
            raise YamlContentError(f"{_where(path)}the value at {_at(node)} contains U+{ord(bad.group()):04X} "
                                   f"(written as an escape), {why}; remove it")
        return
    expected = SEQ if isinstance(node, SequenceNode) else MAP
    if node.tag != expected:
        kind = "list" if expected == SEQ else "mapping"
        raise YamlContentError(f"{_where(path)}tag {short_tag(node.tag)} on the {kind} at {_at(node)} is not "
                               f"supported: write a plain {kind} (YAML sets, ordered maps and pairs are not used)")
    if isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                kind = "list" if isinstance(key_node, SequenceNode) else "mapping"
                raise YamlContentError(f"{_where(path)}the key at {_at(key_node)} is a {kind}; keys must be text")
            unprintable = next((char for char in key_node.value if not char.isprintable()), None)
            if unprintable is not None:  # keys become paths in messages and names in containers
                raise YamlContentError(f"{_where(path)}the key {key_node.value!r} at {_at(key_node)} contains "
                                       f"U+{ord(unprintable):04X}, an invisible or control character; keys are "
                                       "names: remove it")
            first = seen.get(key_node.value)
            if first is not None:
                raise YamlContentError(
                    f"{_where(path)}key {key_node.value!r} appears twice, at lines {first.start_mark.line + 1} and "
                    f"{key_node.start_mark.line + 1}; YAML would silently keep only the last one: remove one")
            seen[key_node.value] = key_node


# -- what YAML 1.1 would have made of a text, for error messages ------------------------

def yaml11_reading(text: str) -> Any:
    """The value PyYAML's YAML 1.1 rules give ``text`` written as a plain scalar (``text`` itself if text)."""
    tag = yaml.resolver.Resolver().resolve(ScalarNode, text, (True, False))
    if tag == NULL:
        return None
    build = _YAML11_CONSTRUCTORS.get(tag)
    if build is None:
        return text
    try:
        return build(SafeConstructor(), ScalarNode(tag, text))
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError):
        return text


def describe_yaml11(text: str, value: Any) -> str:
    """How YAML 1.1 reads ``text``, in words: ``true``, ``18 (octal)``, ``750 (base 60)``, ``the date 2024-01-01``."""
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return canonical_text(value)
    if isinstance(value, int):
        digits = text.lstrip("+-").replace("_", "")
        if digits.startswith("0x"):
            return f"{value}, a hexadecimal number"
        if digits.startswith("0b"):
            return f"{value}, a binary number"
        if ":" in digits:
            return f"{value}, a base-60 number"
        if digits.startswith("0") and digits != "0":
            return f"{value}, an octal number"
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "not-a-number"
        if math.isinf(value):
            return "infinity" if value > 0 else "minus infinity"
        return f"{value!r}, a base-60 number" if ":" in text else repr(value)
    if isinstance(value, dt.datetime):
        return f"the time {value.isoformat(sep=' ')}"
    if isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    return "text"


def typed_field_hint(text: str, expected: str) -> str:
    """Why the text ``text`` is refused where ``expected`` (``"boolean"`` or ``"number"``) is needed, and what to write.

    The message quotes the text, says how YAML 1.1 would have read it and what
    Live accepts instead: ``true``/``false``, or a plain decimal number.
    """
    reading = yaml11_reading(text)
    if isinstance(reading, str):
        how = "YAML 1.1 reads it as text too"
    else:
        how = f"YAML 1.1 would have read it as {describe_yaml11(text, reading)}"
    if expected == "boolean":
        return f"{text!r} is text here, not a boolean ({how}): write true or false"
    suggestion = _decimal_suggestion(text, reading)
    example = f" such as {suggestion}" if suggestion else ""
    return f"{text!r} is text here, not a number ({how}): write a plain decimal number{example}"


def _decimal_suggestion(text: str, reading: Any) -> str | None:
    if isinstance(reading, bool):
        return None
    if isinstance(reading, int) or (isinstance(reading, float) and math.isfinite(reading)):
        return canonical_text(reading)
    match = re.fullmatch(r"\+?0*([0-9]+)", text.replace("_", ""))
    return match.group(1) if match else None
