"""Dialled-number matching: exact, Asterisk patterns, regex, precedence and the rule index."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.routing.matcher import (
    NumberMatch,
    PatternError,
    RuleIndex,
    compile_match,
    precedence_order,
)

# --- syntax --------------------------------------------------------------------------------


def test_a_plain_string_is_an_exact_match() -> None:
    m = compile_match("100")
    assert m.kind == "exact"
    assert m.text == "100"
    assert m.matches("100")
    assert not m.matches("1000")
    assert not m.matches("10")
    assert not m.matches("")


def test_exact_keeps_symbols_and_is_case_sensitive() -> None:
    m = compile_match("*98#")
    assert m.kind == "exact"
    assert m.matches("*98#")
    assert not m.matches("*98")
    assert compile_match("alice").matches("alice")
    assert not compile_match("alice").matches("Alice")


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("_1XXX", ["1000", "1999", "1234"], ["100", "10000", "2000", "1a00", "1 00"]),
        ("_X", [str(d) for d in range(10)], ["", "a", "*", "12"]),
        ("_Z", [str(d) for d in range(1, 10)], ["0", "a"]),
        ("_N", [str(d) for d in range(2, 10)], ["0", "1", "a"]),
        ("_xzn", ["012", "099"], ["002", "011"]),  # lower case x, z, n are the classes
        ("_[15-7]", ["1", "5", "6", "7"], ["2", "4", "8", "0", "-", "15"]),
        ("_[-1]", ["-", "1"], ["0", "2"]),  # a "-" first in a set is itself
        ("_[1-]", ["-", "1"], ["0"]),  # and last too
        ("_[XN]", ["X", "N"], ["1", "2", "x"]),  # letters in a set are literal
        ("_[a-c]9", ["a9", "b9", "c9"], ["d9", "A9"]),
        ("_9.", ["90", "9123456789", "9*#"], ["9", "8123"]),  # "." is one or more of anything
        ("_9!", ["9", "90", "9123456789"], ["", "8"]),  # "!" is zero or more
        ("_.", ["0", "abc"], [""]),
        ("_!", ["", "0", "abc"], []),
        ("_*21*X.", ["*21*51", "*21*5#"], ["*21*5", "*21*", "*21*a1", "21*51"]),
        ("_+81X", ["+812"], ["812", "+81"]),
        ("_#", ["#"], ["*"]),
        ("_A1", ["A1"], ["a1"]),  # other letters match themselves, case-sensitive
        ("_1_2", ["1_2"], ["12"]),  # a later "_" is a literal
        ("_1-NXX", ["1-234"], ["1234"]),  # "-" is not dropped as in Asterisk
        ("_0312XXXXXX", ["0312345678"], ["0313345678", "031234567", "03123456789"]),
    ],
)
def test_pattern_syntax(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    m = compile_match(pattern)
    assert m.kind == "pattern"
    for number in matching:
        assert m.matches(number), number
    for number in not_matching:
        assert not m.matches(number), number


def test_pattern_positions_and_lengths() -> None:
    m = compile_match("_0[1-3]N.")
    assert m.positions == ("0", "123", "23456789")
    assert m.tail == "."
    assert (m.min_length, m.max_length) == (4, None)
    bang = compile_match("_0!")
    assert (bang.min_length, bang.max_length) == (1, None)
    fixed = compile_match("_81XX")
    assert (fixed.tail, fixed.min_length, fixed.max_length) == ("", 4, 4)
    assert (compile_match("100").min_length, compile_match("100").max_length) == (3, 3)


def test_regex_must_match_the_whole_number() -> None:
    m = compile_match(r"/1\d{3}/")
    assert m.kind == "regex"
    assert m.matches("1234")
    assert not m.matches("12345")  # fullmatch, not search
    assert not m.matches("01234")
    anchored = compile_match(r"/^1\d{3}$/")
    assert anchored.matches("1234")
    assert not anchored.matches("12345")
    prefix = compile_match(r"/1.*/")
    assert prefix.matches("1") and prefix.matches("1999999")
    assert not prefix.matches("21")
    assert compile_match(r"/(?:00|\+)44\d+/").matches("+44207")
    # a slash inside the regex is fine: only the first and last characters delimit it
    assert compile_match("/a/b/").matches("a/b")


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("", "the number to match is empty", None),
        ("_", 'pattern "_" has nothing after the "_"', None),
        ("_1[5-", '"[5-" is not closed: add "]"', 2),
        ("_1[5-7", '"[5-7" is not closed', 2),
        ("_1.2", '"." may only end a pattern (found at character 3 of "_1.2")', 2),
        ("_1!X", '"!" may only end a pattern', 2),
        ("_9..", '"." may only end a pattern', 2),
        ("_[]1", '"[]" at character 2 of "_[]1" is an empty set', 1),
        ("_[7-5]", 'range "7-5" in "[7-5]" runs backwards: write "5-7"', 2),
        ("_1]", '"]" at character 3 of "_1]" has no opening "["', 2),
        ("_[\x00-\uffff]", "is too wide", 2),
        ("/abc", 'regex "/abc" is not closed: it must end with "/"', None),
        ("/", 'regex "/" is not closed', None),
        ("//", 'regex "//" is empty', None),
        ("/[/", 'regex "/[/" is invalid: unterminated character set at character 2', 1),
        ("/a(b/", 'regex "/a(b/" is invalid: missing ), unterminated subpattern', 2),
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str, offset: int | None) -> None:
    with pytest.raises(PatternError) as info:
        compile_match(text)
    assert message in str(info.value)
    assert info.value.offset == offset
    assert info.value.text == text
    assert isinstance(info.value, ValueError)


def test_number_match_is_a_frozen_value() -> None:
    m = compile_match("_1XX")
    assert m == compile_match("_1XX")
    assert hash(m) == hash(compile_match("_1XX"))
    assert m != compile_match("_1XXX")
    with pytest.raises(AttributeError):
        m.text = "_2XX"  # type: ignore[misc]


# --- precedence ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ordered",
    [
        # at the first difference, the position accepting fewer characters wins
        ["_12X", "_1[23]X", "_1NX", "_1ZX", "_1XX"],
        # "." after any set, "!" after ".", the end of a pattern after everything
        ["_1XX", "_1X.", "_1X!", "_1X"],
        # a longer pattern against its own prefix: Asterisk puts the end of a pattern last
        ["_123", "_12"],
        # sets of equal size: lower smallest character first, then the lowest differing one
        ["_[13]X", "_[14]X", "_[23]X"],
        ["_[1-3]", "_[135]"],
        ["_[129]", "_[138]"],  # 2 is the lowest character only one of them holds
        # the first differing position decides, not the overall size
        ["_1X", "_N1"],
        ["_0312XXXXXX", "_031XXXXXXX", "_03XXXXXXXX", "_0XXXXXXXXX", "_X."],
    ],
)
def test_patterns_sort_like_asterisk(ordered: list[str]) -> None:
    matches = [compile_match(p) for p in ordered]
    shuffled = list(reversed(matches))
    assert [m.text for m in sorted(shuffled, key=lambda m: m.specificity)] == ordered


def test_exact_before_pattern_before_regex() -> None:
    exact, pattern, regex = compile_match("1"), compile_match("_1"), compile_match("/1/")
    assert exact.specificity < pattern.specificity < regex.specificity
    assert compile_match("999").specificity == exact.specificity  # exact: definition order
    assert compile_match("/2/").specificity == regex.specificity  # regex: definition order


def test_case_of_a_class_letter_does_not_change_precedence() -> None:
    assert compile_match("_1xn").specificity == compile_match("_1XN").specificity


def test_lookup_returns_candidates_in_precedence_order() -> None:
    rules = [
        ("/1\\d{3}/", "regex-1"),
        ("_1X.", "1X."),
        ("_1XXX", "1XXX"),
        ("1234", "exact-1"),
        ("_12XX", "12XX"),
        ("/.*4/", "regex-2"),
        ("_1XXX", "1XXX-again"),
        ("1234", "exact-2"),
        ("_1!", "1!"),
        ("_2XXX", "2XXX"),
        ("1235", "other-exact"),
    ]
    index = RuleIndex([(compile_match(t), v) for t, v in rules])
    assert index.lookup("1234") == [
        "exact-1",
        "exact-2",
        "12XX",
        "1XXX",
        "1XXX-again",
        "1X.",
        "1!",
        "regex-1",
        "regex-2",
    ]
    assert index.lookup("1") == ["1!"]
    assert index.lookup("2999") == ["2XXX"]
    assert index.lookup("3") == []
    assert len(index) == len(rules)


def test_lookup_of_the_empty_number() -> None:
    index = RuleIndex([(compile_match("_!"), "any"), (compile_match("_."), "one-or-more")])
    assert index.lookup("") == ["any"]
    assert index.lookup("5") == ["one-or-more", "any"]
    assert RuleIndex([]).lookup("") == []


def test_lookup_with_patterns_too_wide_to_expand_in_the_trie() -> None:
    # [0-9][0-9] would be 100 branches: the pattern stays at the root and is still found
    rules = ["_[0-9][0-9]", "_[0-4][0-9]", "_XX", "_0[0-9]", "_X[5-9]", "_[a-z][a-z]."]
    index = RuleIndex([(compile_match(t), t) for t in rules])
    assert index.lookup("07") == ["_0[0-9]", "_[0-4][0-9]", "_X[5-9]", "_[0-9][0-9]", "_XX"]
    assert index.lookup("ab") == []
    assert index.lookup("abc") == ["_[a-z][a-z]."]


def test_lookup_does_not_offer_patterns_of_another_length_or_prefix() -> None:
    index = RuleIndex([(compile_match(t), t) for t in ["_81XX", "_0312XXXXXX", "_9."]])
    assert index.lookup("8123") == ["_81XX"]
    assert index.lookup("812") == []
    assert index.lookup("81234") == []
    assert index.lookup("0312345678") == ["_0312XXXXXX"]
    assert index.lookup("0313345678") == []
    assert index.lookup("9") == []
    assert index.lookup("91") == ["_9."]


# --- properties ----------------------------------------------------------------------------

digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=12)


@given(digit_strings, st.data())
def test_a_pattern_made_from_a_number_matches_it(number: str, data: st.DataObject) -> None:
    """Replacing digits by X (or by Z/N where they fit) gives a pattern matching the number."""
    out = []
    for d in number:
        choices = [d, "X", "x", f"[{d}]", f"[0-{d}]"]
        if d >= "1":
            choices.append("Z")
        if d >= "2":
            choices.append("N")
        out.append(data.draw(st.sampled_from(choices)))
    pattern = compile_match("_" + "".join(out))
    assert pattern.matches(number)
    assert RuleIndex([(pattern, "p")]).lookup(number) == ["p"]


@given(digit_strings, st.data())
def test_changing_a_literal_digit_breaks_the_match(number: str, data: st.DataObject) -> None:
    keep = data.draw(st.integers(0, len(number) - 1))
    text = "_" + "".join(d if i == keep else "X" for i, d in enumerate(number))
    other = str((int(number[keep]) + data.draw(st.integers(1, 9))) % 10)
    changed = number[:keep] + other + number[keep + 1 :]
    m = compile_match(text)
    assert m.matches(number)
    assert not m.matches(changed)
    assert not m.matches(number + "0")
    assert not m.matches(number[:-1])


_TOKEN_SETS: dict[str, str] = {
    "X": "0123456789",
    "Z": "123456789",
    "N": "23456789",
    "[0-2]": "012",
    "[13]": "13",
    "[-1]": "-1",
    "0": "0",
    "1": "1",
    "2": "2",
    "*": "*",
}
tokens = st.lists(st.sampled_from(sorted(_TOKEN_SETS)), min_size=0, max_size=5)
tails = st.sampled_from(["", ".", "!"])


def reference_match(toks: list[str], tail: str, number: str) -> bool:
    """An oracle independent of the parser: position by position over the token sets."""
    if len(number) < len(toks):
        return False
    for tok, ch in zip(toks, number, strict=False):
        if ch not in _TOKEN_SETS[tok]:
            return False
    rest = len(number) - len(toks)
    return {"": rest == 0, ".": rest >= 1, "!": True}[tail]


@given(tokens, tails, st.text(alphabet="0123*-4", max_size=7))
def test_pattern_matching_agrees_with_a_reference(toks: list[str], tail: str, number: str) -> None:
    if not toks and not tail:
        return
    m = compile_match("_" + "".join(toks) + tail)
    assert m.matches(number) == reference_match(toks, tail, number)


def rule_texts() -> st.SearchStrategy[str]:
    small = "0123"
    exact = st.text(alphabet=small, min_size=1, max_size=4)
    pattern = st.builds(
        lambda toks, tail: "_" + "".join(toks) + tail,
        st.lists(st.sampled_from(["0", "1", "2", "3", "X", "Z", "N", "[1-2]", "[03]"]), max_size=4),
        tails,
    ).filter(lambda t: t != "_")
    regex = st.sampled_from([r"/1\d*/", r"/[0-3]{2}/", r"/.*3/", "/0|1|22/"])
    return st.one_of(exact, exact, pattern, pattern, pattern, regex)


@settings(max_examples=300)
@given(st.lists(rule_texts(), max_size=40), st.lists(st.text(alphabet="01234", max_size=5)))
def test_rule_index_agrees_with_a_linear_scan(texts: list[str], numbers: list[str]) -> None:
    entries = [(compile_match(t), i) for i, t in enumerate(texts)]
    index = RuleIndex(entries)
    probes = numbers + [t for t in texts if not t.startswith(("_", "/"))]
    for number in probes:
        assert index.lookup(number) == precedence_order(entries, number), number


def test_precedence_order_is_the_naive_definition() -> None:
    entries: list[tuple[NumberMatch, str]] = [
        (compile_match("_X."), "a"),
        (compile_match("15"), "b"),
        (compile_match("/1./"), "c"),
        (compile_match("_1X"), "d"),
    ]
    assert precedence_order(entries, "15") == ["b", "d", "a", "c"]
    assert precedence_order(entries, "25") == ["a"]
