"""Dialled-number matching: exact numbers, Asterisk-style patterns and regular expressions.

A pure core (ARCHITECTURE.md, principle 1): no clock, no I/O. The dialplan loader compiles every
``match:`` string once with :func:`compile_match`; ``decide`` asks a :class:`RuleIndex` for the
rules whose number matches, in precedence order.

Three syntaxes, told apart by the first character:

``"100"``
    **exact**: any string that does not start with ``_`` or ``/`` matches only itself
    (case-sensitive).
``"_1XXX"``
    **pattern**, as in an Asterisk dialplan. After the leading ``_``:

    - ``X`` matches one digit 0-9, ``Z`` one digit 1-9, ``N`` one digit 2-9 (``x``, ``z`` and
      ``n`` are the same);
    - ``[15-7]`` matches one character of the set; ``a-b`` inside is an inclusive range, a ``-``
      first or last in the set is itself, and ``X``, ``Z``, ``N`` inside a set are literal;
    - ``.`` matches one or more characters of any kind and ``!`` zero or more; either may only
      end the pattern;
    - every other character matches itself (case-sensitive); unlike Asterisk, ``-`` is not
      dropped as a visual separator, so ``_1-NXX`` matches ``"1-234"``, not ``"1234"``.
``"/^1\\d{3}$/"``
    **regex** between slashes, with Python :mod:`re` syntax. It must match the *whole* number
    (:meth:`re.Pattern.fullmatch`), so ``^`` and ``$`` are allowed but change nothing; to accept
    any number that starts with 1, write ``/1.*/``.

Precedence (:attr:`NumberMatch.specificity`) follows Asterisk's ``ext_cmp()`` in ``pbx.c``:
exact numbers come before every pattern; two patterns are compared position by position after the
``_``, and at the first position where they differ the one matching *fewer* characters sorts first
(a literal before a two-character set, ``[2-4]`` before ``N`` (8 digits) before ``Z`` (9) before
``X`` (10)); a set of equal size with the lower smallest character sorts first, then the set that
holds the lowest character the other lacks; ``.`` comes after any set, ``!`` after ``.``, and the
end of a pattern after everything, so ``_12X`` sorts before ``_1XX``, ``_1XX`` before ``_1X.``,
and ``_1X.`` before ``_1X!``. Regexes have no specificity and come after all patterns. Rules whose
keys are equal keep their definition order (the sort is stable), which is also the order of all
exact rules among themselves and of all regex rules among themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

__all__ = [
    "MatchKind",
    "NumberMatch",
    "PatternError",
    "PositionKey",
    "RuleIndex",
    "Specificity",
    "compile_match",
    "precedence_order",
]

MatchKind = Literal["exact", "pattern", "regex"]

PositionKey = tuple[int, int, int, str]
"""One position of a pattern as a sort key: ``(special, count, lowest, chars)``.

``special`` is 0 for a character set (a literal is a set of one), 1 for ``.``, 2 for ``!`` and 3
for the end of the pattern; ``count`` is the set's size, ``lowest`` the code point of its
smallest character and ``chars`` its characters in ascending order (empty unless ``special`` is
0). Comparing ``chars`` of two sets of equal size orders them as Asterisk's bitmap comparison
does: the set holding the lowest character that the other lacks comes first.
"""

Specificity = tuple[int, tuple[PositionKey, ...]]
"""A sort key: ``(kind rank, positions)``; smaller sorts first (more specific).

Kind rank 0 is exact, 1 pattern, 2 regex; only patterns have positions.
"""

_DIGITS = "0123456789"
_CLASSES = {"X": _DIGITS, "Z": _DIGITS[1:], "N": _DIGITS[2:]}
_END: PositionKey = (3, 0, 0, "")
_TAIL_KEYS: dict[str, PositionKey] = {".": (1, 0, 0, ""), "!": (2, 0, 0, "")}
_MAX_RANGE = 256


class PatternError(ValueError):
    """A ``match:`` string cannot be compiled; the message says why in plain words.

    ``text`` is the whole string and ``offset`` the index of the offending character in it
    (``None`` when the problem is the string as a whole), so that a loader can point at the
    column.
    """

    def __init__(self, message: str, text: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.offset = offset


@dataclass(frozen=True, slots=True)
class NumberMatch:
    """A compiled ``match:`` string; build it with :func:`compile_match`."""

    kind: MatchKind
    text: str
    """The string as written in the dialplan, e.g. ``"_0312XXXXXX"``."""
    specificity: Specificity
    """Precedence key, smaller first (see the module docstring)."""
    positions: tuple[str, ...] = ()
    """Patterns only: for each fixed position, the characters it accepts, ascending."""
    tail: Literal["", ".", "!"] = ""
    """Patterns only: ``"."`` or ``"!"`` when the pattern ends with one, else ``""``."""
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @property
    def min_length(self) -> int:
        """The length of the shortest number this can match (0 for a regex: unknown)."""
        if self.kind == "exact":
            return len(self.text)
        if self.kind == "pattern":
            return len(self.positions) + (1 if self.tail == "." else 0)
        return 0

    @property
    def max_length(self) -> int | None:
        """The length of the longest number this can match, ``None`` when unbounded."""
        if self.kind == "exact":
            return len(self.text)
        if self.kind == "pattern" and not self.tail:
            return len(self.positions)
        return None

    def matches(self, number: str) -> bool:
        """Whether ``number`` (the dialled digits, e.g. ``"0312345678"``) is matched."""
        if self._regex is None:
            return number == self.text
        return self._regex.fullmatch(number) is not None


def compile_match(text: str) -> NumberMatch:
    """Compile one ``match:`` string (exact, ``_`` pattern or ``/regex/``).

    Raises :class:`PatternError` with a message meant for the person who wrote the plan.
    """
    if not text:
        raise PatternError("the number to match is empty", text)
    if text[0] == "/":
        return _compile_regex(text)
    if text[0] == "_":
        return _compile_pattern(text)
    return NumberMatch("exact", text, (0, ()))


def _compile_regex(text: str) -> NumberMatch:
    if len(text) < 2 or text[-1] != "/":
        raise PatternError(f'regex "{text}" is not closed: it must end with "/"', text)
    body = text[1:-1]
    if not body:
        raise PatternError('regex "//" is empty', text)
    try:
        compiled = re.compile(body)
    except re.error as exc:
        offset = None if exc.pos is None else exc.pos + 1
        where = "" if offset is None else f" at character {offset + 1}"
        raise PatternError(f'regex "{text}" is invalid: {exc.msg}{where}', text, offset) from exc
    return NumberMatch("regex", text, (2, ()), _regex=compiled)


def _compile_pattern(text: str) -> NumberMatch:
    positions: list[str] = []
    tail: Literal["", ".", "!"] = ""
    i = 1
    while i < len(text):
        c = text[i]
        if c == "." or c == "!":
            if i != len(text) - 1:
                raise PatternError(
                    f'"{c}" may only end a pattern (found at character {i + 1} of "{text}")',
                    text,
                    i,
                )
            tail = "." if c == "." else "!"
        elif c == "[":
            chars, i = _parse_set(text, i)
            positions.append(chars)
            continue
        elif c == "]":
            raise PatternError(f'"]" at character {i + 1} of "{text}" has no opening "["', text, i)
        else:
            positions.append(_CLASSES.get(c.upper(), c))
        i += 1
    if not positions and not tail:
        raise PatternError(f'pattern "{text}" has nothing after the "_"', text)
    keys = tuple(_position_key(chars) for chars in positions)
    keys += (_TAIL_KEYS[tail], _END) if tail else (_END,)
    regex = "".join(_regex_for(chars) for chars in positions)
    regex += {"": "", ".": ".+", "!": ".*"}[tail]
    compiled = re.compile(regex, re.DOTALL)
    return NumberMatch("pattern", text, (1, keys), tuple(positions), tail, compiled)


def _parse_set(text: str, start: int) -> tuple[str, int]:
    """Parse the ``[...]`` opening at ``start``; return its characters and the index after it."""
    end = text.find("]", start + 1)
    if end < 0:
        raise PatternError(f'"{text[start:]}" is not closed: add "]"', text, start)
    body = text[start + 1 : end]
    if not body:
        where = f'at character {start + 1} of "{text}"'
        raise PatternError(f'"[]" {where} is an empty set', text, start)
    chars: set[str] = set()
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            low, high = body[j], body[j + 2]
            if low > high:
                raise PatternError(
                    f'range "{low}-{high}" in "{text[start : end + 1]}" runs backwards: '
                    f'write "{high}-{low}"',
                    text,
                    start + 1 + j,
                )
            if ord(high) - ord(low) >= _MAX_RANGE:
                raise PatternError(
                    f'range "{low}-{high}" in "{text[start : end + 1]}" is too wide '
                    f"(at most {_MAX_RANGE} characters)",
                    text,
                    start + 1 + j,
                )
            chars.update(chr(o) for o in range(ord(low), ord(high) + 1))
            j += 3
        else:
            chars.add(body[j])
            j += 1
    return "".join(sorted(chars)), end + 1


def _position_key(chars: str) -> PositionKey:
    return (0, len(chars), ord(chars[0]), chars)


def _regex_for(chars: str) -> str:
    if len(chars) == 1:
        return re.escape(chars)
    if chars == _DIGITS:
        return "[0-9]"
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


T = TypeVar("T")

_Test = Callable[[str], object]
"""A compiled pattern's ``fullmatch``: truthy when the whole number matches."""


class _Node(Generic[T]):
    """One node of the pattern trie: patterns whose first ``depth`` characters lead here."""

    __slots__ = ("children", "fixed", "open")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.fixed: dict[int, list[tuple[int, _Test, T]]] = {}
        """Patterns without ``.``/``!``, by their length: ``(rank, test, value)``."""
        self.open: list[tuple[int, int, _Test, T]] = []
        """Patterns ending in ``.`` or ``!``: ``(rank, min_length, test, value)``."""


class RuleIndex(Generic[T]):
    """The rules of one context, indexed by the number they match.

    Built once from ``(match, value)`` pairs in definition order; :meth:`lookup` returns the
    values of every rule whose match accepts a number, in precedence order: exact rules first
    (definition order), then patterns by :attr:`NumberMatch.specificity` (ties in definition
    order), then regexes in definition order.

    How a lookup stays fast with thousands of rules:

    - exact rules are one ``dict`` lookup;
    - patterns sit in a trie keyed by their leading characters. A pattern's literal prefix is
      followed as is, and its first character sets are expanded into one branch per character as
      long as that makes at most :attr:`EXPANSION_LIMIT` branches (so ``_0312XXXXXX`` hangs under
      ``0312`` and then under each of the ten digits, and ``_NXXX`` under ``2`` ... ``9``). A
      lookup walks the trie along the number and tests only the patterns met on that path; at
      each node they are further split by exact length (patterns without ``.`` or ``!``), so only
      patterns that can match a number of that length are tested, each with its precompiled
      regex. Matches are ordered by a rank computed once at build time;
    - regexes are tested one by one; plans are expected to hold few of them.

    The index is immutable after construction and safe to share between calls.
    """

    EXPANSION_LIMIT = 10
    """Most trie branches one pattern is expanded into."""

    __slots__ = ("_exact", "_regexes", "_root", "_size")

    def __init__(self, entries: Iterable[tuple[NumberMatch, T]]) -> None:
        self._exact: dict[str, list[T]] = {}
        self._regexes: list[tuple[_Test, T]] = []
        self._root: _Node[T] = _Node()
        patterns: list[tuple[Specificity, int, NumberMatch, T]] = []
        size = 0
        for match, value in entries:
            if match.kind == "exact":
                self._exact.setdefault(match.text, []).append(value)
            elif match.kind == "pattern":
                patterns.append((match.specificity, size, match, value))
            else:
                assert match._regex is not None
                self._regexes.append((match._regex.fullmatch, value))
            size += 1
        self._size = size
        patterns.sort(key=lambda p: (p[0], p[1]))
        for rank, (_spec, _index, match, value) in enumerate(patterns):
            self._insert(rank, match, value)

    def __len__(self) -> int:
        """The number of rules indexed."""
        return self._size

    def _insert(self, rank: int, match: NumberMatch, value: T) -> None:
        assert match._regex is not None
        test: _Test = match._regex.fullmatch
        nodes = [self._root]
        for chars in match.positions:
            if len(nodes) * len(chars) > self.EXPANSION_LIMIT:
                break
            nodes = [_child(node, c) for node in nodes for c in chars]
        for node in nodes:
            if match.tail:
                node.open.append((rank, match.min_length, test, value))
            else:
                node.fixed.setdefault(len(match.positions), []).append((rank, test, value))

    def lookup(self, number: str) -> list[T]:
        """The values of all rules matching ``number``, most preferred first."""
        exact = self._exact.get(number)
        result = list(exact) if exact else []
        length = len(number)
        hits: list[tuple[int, T]] = []
        node: _Node[T] | None = self._root
        depth = 0
        while node is not None:
            bucket = node.fixed.get(length)
            if bucket:
                for rank, test, value in bucket:
                    if test(number):
                        hits.append((rank, value))
            for rank, min_length, test, value in node.open:
                if length >= min_length and test(number):
                    hits.append((rank, value))
            if depth == length:
                break
            node = node.children.get(number[depth])
            depth += 1
        if hits:
            if len(hits) > 1:
                hits.sort(key=_rank)
            result.extend(value for _rank_, value in hits)
        for regex_test, value in self._regexes:
            if regex_test(number):
                result.append(value)
        return result


def _child(node: _Node[T], char: str) -> _Node[T]:
    child = node.children.get(char)
    if child is None:
        child = node.children[char] = _Node()
    return child


def _rank(hit: tuple[int, object]) -> int:
    return hit[0]


def precedence_order(entries: Sequence[tuple[NumberMatch, T]], number: str) -> list[T]:
    """The reference definition of :meth:`RuleIndex.lookup`: a linear scan, for tests and benches.

    Sorts the matching entries by ``(specificity, definition index)``.
    """
    found = [(m.specificity, i, v) for i, (m, v) in enumerate(entries) if m.matches(number)]
    found.sort(key=lambda f: (f[0], f[1]))
    return [v for _s, _i, v in found]
