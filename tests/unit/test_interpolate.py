"""Compose-style interpolation (app/compose/interpolate.py).

Expected values follow the Compose specification's interpolation rules:
https://github.com/compose-spec/compose-spec/blob/main/spec.md#interpolation
"""
from __future__ import annotations

import copy

import pytest

from app.compose.interpolate import interpolate, interpolate_string, referenced_variables
from app.errors import InterpolationError, LiveError


# -- plain substitution ------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("${NAME}", "world"),
        ("$NAME", "world"),
        ("hello ${NAME}!", "hello world!"),
        ("hello $NAME!", "hello world!"),
        ("${NAME}${NAME}", "worldworld"),
        ("$NAME/$OTHER", "world/other"),
        ("${NAME}_suffix", "world_suffix"),
        ("prefix-${OTHER}-suffix", "prefix-other-suffix"),
        ("no variables here", "no variables here"),
        ("", ""),
    ],
)
def test_substitutes_braced_and_unbraced_variables(text, expected):
    assert interpolate_string(text, {"NAME": "world", "OTHER": "other"}) == expected


def test_unbraced_name_is_greedy_over_name_characters():
    # $NAME_suffix is the variable "NAME_suffix", not "NAME" followed by text,
    # exactly as in a shell; the braced form is the way to delimit it.
    with pytest.raises(InterpolationError, match="NAME_suffix"):
        interpolate_string("$NAME_suffix", {"NAME": "world"})
    assert interpolate_string("${NAME}_suffix", {"NAME": "world"}) == "world_suffix"


def test_unbraced_name_stops_at_non_name_character():
    assert interpolate_string("$NAME.txt", {"NAME": "file"}) == "file.txt"
    assert interpolate_string("$NAME-x", {"NAME": "file"}) == "file-x"


def test_substituted_value_is_not_interpolated_again():
    # A value containing "$" comes from a variable and is used verbatim:
    # no second pass, so a generated secret with '$' in it cannot break rendering.
    assert interpolate_string("${A}", {"A": "${B}", "B": "nope"}) == "${B}"
    assert interpolate_string("${A}", {"A": "$"}) == "$"


def test_non_string_variable_values_are_converted_to_text():
    assert interpolate_string("${N}", {"N": 42}) == "42"


# -- $$ escape --------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("$$", "$"),
        ("$$NAME", "$NAME"),
        ("$${NAME}", "${NAME}"),
        ("cost: 5$$", "cost: 5$"),
        ("$$$$", "$$"),
        ("$$${NAME}", "$world"),
    ],
)
def test_double_dollar_is_a_literal_dollar(text, expected):
    assert interpolate_string(text, {"NAME": "world"}) == expected


def test_escaped_reference_to_undefined_variable_is_not_an_error():
    # Used by healthchecks that let the container's shell expand variables.
    assert interpolate_string('pg_isready -U "$${POSTGRES_USER}"', {}) == 'pg_isready -U "${POSTGRES_USER}"'


# -- defaults: ${VAR:-d} vs ${VAR-d} ----------------------------------------

@pytest.mark.parametrize(
    "variables, colon_form, plain_form",
    [
        # unset: both forms use the default
        ({}, "dflt", "dflt"),
        # set but empty: only ':-' treats empty as missing
        ({"V": ""}, "dflt", ""),
        # set and non-empty: both use the value
        ({"V": "val"}, "val", "val"),
    ],
    ids=["unset", "empty", "set"],
)
def test_default_forms_distinguish_unset_from_empty(variables, colon_form, plain_form):
    assert interpolate_string("${V:-dflt}", variables) == colon_form
    assert interpolate_string("${V-dflt}", variables) == plain_form


def test_empty_default_is_allowed():
    assert interpolate_string("[${V:-}]", {}) == "[]"
    assert interpolate_string("[${V-}]", {}) == "[]"


def test_default_may_contain_spaces_and_punctuation():
    assert interpolate_string("${V:-a b, c=d:e/f}", {}) == "a b, c=d:e/f"


def test_default_referencing_a_variable_with_unbraced_syntax():
    variables = {"FALLBACK": "fb"}
    assert interpolate_string("${V:-$FALLBACK}", variables) == "fb"
    assert interpolate_string("${V:-x-$FALLBACK-y}", variables) == "x-fb-y"
    # The default is not evaluated when the variable is set.
    assert interpolate_string("${V:-$MISSING}", {"V": "set"}) == "set"


def test_default_referencing_an_undefined_variable_is_an_error_naming_it():
    with pytest.raises(InterpolationError, match=r"undefined variable MISSING at services\.web\.image"):
        interpolate_string("${V:-$MISSING}", {}, "services.web.image")


def test_default_may_escape_a_dollar():
    assert interpolate_string("${V:-$$5}", {}) == "$5"


@pytest.mark.parametrize("variables, expected", [({"B": "b"}, "b"), ({"A": "a", "B": "b"}, "a")])
def test_default_referencing_a_variable_with_braced_syntax(variables, expected):
    assert interpolate_string("${A:-${B}}", variables) == expected


# -- required: ${VAR:?msg} / ${VAR?msg} -------------------------------------

def test_required_variable_present_is_substituted():
    assert interpolate_string("${V:?set V}", {"V": "ok"}) == "ok"
    assert interpolate_string("${V?set V}", {"V": "ok"}) == "ok"


@pytest.mark.parametrize("text", ["${V:?please set V}", "${V?please set V}"])
def test_required_variable_unset_raises_with_message_and_path(text):
    with pytest.raises(InterpolationError) as info:
        interpolate_string(text, {}, "services.db.environment.PASSWORD")
    message = str(info.value)
    assert "V" in message
    assert "please set V" in message
    assert "services.db.environment.PASSWORD" in message


def test_required_colon_form_rejects_empty_but_plain_form_accepts_it():
    with pytest.raises(InterpolationError, match="please"):
        interpolate_string("${V:?please}", {"V": ""})
    assert interpolate_string("[${V?please}]", {"V": ""}) == "[]"


# -- undefined variables ---------------------------------------------------

@pytest.mark.parametrize("text", ["${UNDEFINED}", "$UNDEFINED", "x ${UNDEFINED} y"])
def test_undefined_variable_is_an_error_not_empty_string(text):
    with pytest.raises(InterpolationError, match="undefined variable UNDEFINED"):
        interpolate_string(text, {})


def test_interpolation_error_is_a_live_error():
    with pytest.raises(LiveError):
        interpolate_string("${UNDEFINED}", {})


def test_error_without_location_has_no_dangling_at():
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${UNDEFINED}", {})
    assert str(info.value) == "undefined variable UNDEFINED"


def test_undefined_variable_in_document_names_variable_and_dotted_path():
    document = {"services": {"web": {"image": "nginx", "environment": {"X": "${MISSING}"}}}}
    with pytest.raises(InterpolationError) as info:
        interpolate(document, {})
    assert "MISSING" in str(info.value)
    assert "services.web.environment.X" in str(info.value)


def test_undefined_variable_in_list_names_the_index():
    document = {"services": {"web": {"command": ["run", "--flag=${MISSING}"]}}}
    with pytest.raises(InterpolationError) as info:
        interpolate(document, {})
    assert "services.web.command[1]" in str(info.value)


def test_path_prefix_is_used_for_top_level_strings():
    with pytest.raises(InterpolationError, match=r"at root\.key"):
        interpolate({"key": "$X"}, {}, "root")


# -- invalid syntax --------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        "$",            # dollar at end
        "price $ 5",    # dollar followed by a space
        "$1",           # names cannot start with a digit
        "${}",          # empty name
        "${1ABC}",      # invalid name
        "${NAME",       # unterminated
        "${NAME:-x",    # unterminated, with an operator
        "${NAME:-x\n}",  # an expression with an operator ends on its line (compose-go)
        "${NAME!}",     # not an operator
        "${NAME:x}",    # not an operator either
        "${NA ME}",     # space in name
        "${-x}",
        "$}",           # a $ that starts nothing (compose-go keeps it; Live asks for $$)
    ],
)
def test_invalid_dollar_syntax_is_an_error(text):
    with pytest.raises(InterpolationError, match="invalid interpolation"):
        interpolate_string(text, {"NAME": "v", "NA": "v", "ABC": "v"}, "services.web.command")


def test_invalid_syntax_message_names_location_and_explains_escape():
    with pytest.raises(InterpolationError) as info:
        interpolate_string("echo $ 5", {}, "services.web.command")
    message = str(info.value)
    assert "services.web.command" in message
    assert "$$" in message


def test_invalid_braced_expression_hint_lists_the_operators():
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${NAME!}", {}, "services.web.image")
    message = str(info.value)
    assert "at services.web.image" in message
    assert ":- - :+ + :? ?" in message


def test_expressions_nested_too_deeply_are_an_error_not_a_crash():
    text = "${A:-" * 2000 + "x" + "}" * 2000
    with pytest.raises(InterpolationError, match=r"nested too deeply at services\.web\.image"):
        interpolate_string(text, {}, "services.web.image")
    assert referenced_variables(text) == {"A"}


# -- braces in defaults and alternatives (issue 9, item 9) ---------------------
# The closing brace is found as compose-go finds it (template.getFirstBraceClosingIndex), except that every
# brace counts.

@pytest.mark.parametrize(
    "variables, expected",
    [({"JSON": '{"json":2}'}, '{"json":2}'), ({}, '{"json":1}'), ({"JSON": ""}, '{"json":1}')],
    ids=["set", "unset", "empty"],
)
def test_default_with_braces_leaves_no_stray_brace(variables, expected):
    assert interpolate_string('${JSON:-{"json":1}}', variables) == expected


@pytest.mark.parametrize("variables, expected", [({"CMD": "run"}, "run"), ({}, "echo ${HOME}")], ids=["set", "unset"])
def test_default_with_escaped_braced_reference_leaves_no_stray_brace(variables, expected):
    assert interpolate_string("${CMD:-echo $${HOME}}", variables) == expected


def test_text_after_a_default_with_braces_is_kept():
    assert interpolate_string('${V:-{"a":{"b":1}}} tail ${W}', {"W": "w"}) == '{"a":{"b":1}} tail w'
    assert interpolate_string('${V:-{"a":{"b":1}}} tail ${W}', {"V": "v", "W": "w"}) == "v tail w"


def test_expressions_on_separate_lines_are_separate():
    assert interpolate_string("${A:-x}\n${B:-y}}", {}) == "x\ny}"


@pytest.mark.parametrize(
    "text, variables, expected",
    [
        ("${V:-{{a}}}", {"V": "v"}, "v"),        # compose-go: "v}"
        ("${V:-{{a}}}", {}, "{{a}}"),
        ("${V:-{}} ${W}", {"V": "v", "W": "w"}, "v w"),  # compose-go: "v"
        ("${V:-{}} ${W}", {"W": "w"}, "{} w"),           # compose-go: invalid
    ],
)
def test_every_brace_counts_unlike_compose_go(text, variables, expected):
    # Deliberate difference (docs/PRODUCTS.md): compose-go lets a "{" skip the character after it.
    assert interpolate_string(text, variables) == expected


def test_default_with_an_unbalanced_brace_ends_at_the_last_brace_of_the_line():
    # compose-go: when the braces never balance, the last "}" of the line closes the expression.
    assert interpolate_string("${V:-{a} b", {}) == "{a b"
    assert interpolate_string("${V:-{a} b", {"V": "v"}) == "v b"


# -- alternatives: ${VAR:+alt} / ${VAR+alt} --------------------------------------

@pytest.mark.parametrize(
    "variables, colon_form, plain_form",
    [
        ({}, "", ""),                    # unset: both forms give the (empty) value
        ({"V": ""}, "", "alt"),          # set but empty: only '+' uses the alternative
        ({"V": "val"}, "alt", "alt"),    # set and non-empty: both use the alternative
    ],
    ids=["unset", "empty", "set"],
)
def test_alternative_forms_distinguish_unset_from_empty(variables, colon_form, plain_form):
    assert interpolate_string("${V:+alt}", variables) == colon_form
    assert interpolate_string("${V+alt}", variables) == plain_form


def test_alternative_is_interpolated_only_when_used():
    assert interpolate_string("--opt=${V:+$V,${OTHER}}", {"V": "v", "OTHER": "o"}) == "--opt=v,o"
    assert interpolate_string("[${V:+${MISSING}}]", {}) == "[]"
    with pytest.raises(InterpolationError, match=r"undefined variable MISSING at services\.web\.environment\.X"):
        interpolate_string("${V:+${MISSING}}", {"V": "v"}, "services.web.environment.X")


def test_alternative_with_braces():
    assert interpolate_string('${V:+{"v":"$V"}}', {"V": "1"}) == '{"v":"1"}'


# -- messages of ${VAR:?message} / ${VAR?message} are interpolated ------------------

def test_required_message_is_interpolated():
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${V:?message ${OTHER}}", {"OTHER": "other"}, "services.web.environment.X")
    assert str(info.value) == "required variable V is missing a value at services.web.environment.X: message other"


def test_required_message_shows_an_undefined_variable_as_written():
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${V?set V in plan ${PLAN_NAME}}", {})
    assert str(info.value) == "required variable V is missing a value: set V in plan ${PLAN_NAME}"
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${V?set V in $PLAN_NAME or ${PLAN_NAME:+$OTHER}}", {"PLAN_NAME": "p"})
    assert str(info.value) == "required variable V is missing a value: set V in p or $OTHER"


def test_required_message_is_not_interpolated_when_the_variable_is_present():
    assert interpolate_string("${V:?${MISSING}}", {"V": "ok"}) == "ok"


def test_required_without_message_has_no_dangling_colon():
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${V:?}", {}, "services.web.image")
    assert str(info.value) == "required variable V is missing a value at services.web.image"


def test_invalid_syntax_in_a_used_message_is_an_error():
    with pytest.raises(InterpolationError, match="invalid interpolation"):
        interpolate_string("${V?oops ${}}", {})


# -- documents ---------------------------------------------------------------

def test_interpolates_nested_dicts_and_lists():
    document = {
        "services": {
            "web": {
                "image": "nginx:${TAG}",
                "command": ["serve", "--port", "${PORT}"],
                "environment": {"URL": "https://${HOST}/x"},
            }
        }
    }
    result = interpolate(document, {"TAG": "1.25", "PORT": "8080", "HOST": "example.org"})
    assert result == {
        "services": {
            "web": {
                "image": "nginx:1.25",
                "command": ["serve", "--port", "8080"],
                "environment": {"URL": "https://example.org/x"},
            }
        }
    }


def test_keys_are_not_interpolated():
    document = {"${KEY}": "${VALUE}", "environment": {"$KEY": "x"}}
    result = interpolate(document, {"KEY": "k", "VALUE": "v"})
    assert result == {"${KEY}": "v", "environment": {"$KEY": "x"}}


def test_keys_with_invalid_syntax_are_not_an_error():
    assert interpolate({"$": "ok"}, {}) == {"$": "ok"}


@pytest.mark.parametrize("value", [42, 1.5, True, False, None])
def test_non_string_values_are_untouched(value):
    result = interpolate({"a": value, "b": [value]}, {})
    assert result == {"a": value, "b": [value]}
    assert type(result["a"]) is type(value)


def test_interpolate_returns_a_copy_and_leaves_input_alone():
    document = {"services": {"web": {"image": "${IMG}", "command": ["${IMG}"]}}}
    original = copy.deepcopy(document)
    result = interpolate(document, {"IMG": "nginx"})
    assert document == original
    assert result is not document
    assert result["services"]["web"] is not document["services"]["web"]


def test_interpolate_plain_string_document():
    assert interpolate("${A}", {"A": "1"}) == "1"


# -- referenced_variables ----------------------------------------------------

def test_referenced_variables_finds_every_form():
    document = {
        "services": {
            "web": {
                "image": "$IMAGE",
                "command": ["${CMD}", "${OPT:-x}", "${OPT2-x}", "${REQ:?r}", "${REQ2?r}"],
                "environment": {"A": "${ENV_A}", "N": 5, "B": None},
            }
        }
    }
    assert referenced_variables(document) == {"IMAGE", "CMD", "OPT", "OPT2", "REQ", "REQ2", "ENV_A"}


def test_referenced_variables_ignores_escaped_keys_and_non_strings():
    document = {"${KEY_VAR}": "$$ESCAPED and $${ALSO_ESCAPED}", "n": 1, "l": [True, None]}
    assert referenced_variables(document) == set()


def test_referenced_variables_of_empty_document():
    assert referenced_variables({}) == set()
    assert referenced_variables(None) == set()


def test_referenced_variables_does_not_raise_on_invalid_syntax():
    # Reporting what is referenced must not fail; interpolation reports the syntax error.
    assert referenced_variables("$ ${GOOD}") == {"GOOD"}


def test_referenced_variables_includes_variables_used_in_defaults():
    assert referenced_variables("${A:-$B}") == {"A", "B"}


def test_referenced_variables_includes_variables_used_in_alternatives_and_messages():
    assert referenced_variables("${A:+$B}") == {"A", "B"}
    assert referenced_variables("${A+${B:-$C}}") == {"A", "B", "C"}
    assert referenced_variables("${A:?set ${B}}") == {"A", "B"}
    assert referenced_variables("${A?$B}") == {"A", "B"}


def test_referenced_variables_parses_braces_as_interpolation_does():
    assert referenced_variables('${JSON:-{"json":1}} ${NEXT}') == {"JSON", "NEXT"}
    assert referenced_variables("${CMD:-echo $${HOME}} $TAIL") == {"CMD", "TAIL"}
