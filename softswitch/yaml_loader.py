"""YAML configuration files with positions, validated into typed models.

The admin's YAML is the admin's responsibility, so every mistake in it is reported as a
:class:`ConfigError` carrying ``file:line:col``, the dotted path of the setting and a message
written for a person, never as a traceback. All mistakes found in one pass are reported
together in :class:`ConfigErrors`.

:func:`load_yaml` reads a file with ruamel.yaml's parser (libyaml when available, else the
pure-Python one) and builds plain Python values straight from the parser's events, recording
the line and column of every mapping key, mapping value and sequence item on the way, much as
ruamel's round-trip ``.lc`` does (:meth:`YamlDocument.position` gives them back). Building from
events instead of through ruamel's constructors loads about five times faster, and the nesting
limit is enforced while parsing, before libyaml's composer could recurse out of C stack.

YAML rules (YAML 1.2 core schema, with these choices):

* duplicate keys in a mapping are errors, reported at the second key;
* an integer is an integer only when written in plain decimal (``5060``, ``-1``). Anything
  else that YAML would read as an integer (``0123``, ``0x1F``, ``0o17``, ``+5``) is kept as the
  text written, so a dialled number or PIN with a leading zero is never changed; numeric
  settings still accept ``0123`` (as 123) because validation parses the text;
* dates and times stay text (models parse them where they expect them);
* anchors, aliases and merge keys (``<<: *defaults``) work; an alias may not refer to the
  mapping or list that contains it, and a document may expand to at most
  :data:`MAX_VALUES` values;
* ``!env NAME`` is replaced by the value of environment variable NAME (a string); an unset
  variable is an error, unless a default follows as in the shell: ``!env NAME:-default``;
* ``!secret NAME`` is replaced by the value of NAME in a secrets file (a YAML mapping of
  ``NAME: value``, given to :func:`load_yaml` or named by a top-level key of the document); an
  unknown name is an error (the messages about secrets name them, never show their values);
* ``!include relative/file.yaml`` is replaced by the content of that file, which must lie
  inside the folder of the configuration file given to :func:`load_yaml` (also after symbolic
  links are followed). Errors inside an included file name that file and its positions;
* any other tag is an error.

:func:`validate` runs a pydantic v2 model over the plain values and maps each pydantic error
location back to a position: the value's position for a bad value, the key's position for an
unknown key, the enclosing mapping's position for a missing key. Models raise
:func:`rule_violation` from their validators to report cross-field rules at the key that is
wrong.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from ruamel.yaml.parser import Parser
from ruamel.yaml.reader import Reader
from ruamel.yaml.scanner import Scanner

try:
    import ruamel.yaml.cyaml as _cyaml
except ImportError:  # pragma: no cover - ruamel.yaml.clib is a dependency on CPython
    _cyaml = None  # type: ignore[assignment]
CParser: Any = getattr(_cyaml, "CParser", None)

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "Loc",
    "YamlDocument",
    "format_path",
    "load_model",
    "load_yaml",
    "rule_violation",
    "validate",
    "validate_with_rules",
]

Loc = tuple[str | int, ...]
"""A location inside a document: mapping keys and sequence indices from the root."""

M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest configuration file read, included files counted one by one."""
MAX_VALUES = 2_000_000
"""Most values a document may expand to, aliases and includes counted: stops alias bombs."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted."""
MAX_INCLUDE_DEPTH = 16
"""Deepest chain of ``!include`` accepted."""
MAX_INCLUDED_FILES = 256
"""Most ``!include`` tags resolved for one configuration file."""


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One mistake in a configuration file: where it is (1-based line and column) and what."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ConfigErrors(Exception):
    """All the mistakes found in a configuration, in file order; ``str()`` is one per line."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors: list[ConfigError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def format_path(loc: Iterable[str | int]) -> str:
    """``("users", 2, "password")`` -> ``users[2].password``."""
    out: list[str] = []
    for seg in loc:
        if isinstance(seg, int) and not isinstance(seg, bool):
            out.append(f"[{seg}]")
        elif out:
            out.append(f".{seg}")
        else:
            out.append(str(seg))
    return "".join(out)


def rule_violation(*problems: tuple[Loc, str]) -> PydanticCustomError:
    """An error for a model validator to raise when a rule across several keys is broken.

    Each problem is a location relative to the model being validated (e.g. ``("max_expires",)``
    or ``("users", 3, "username")``) and a message; :func:`validate` reports each one at that
    key, or at the enclosing mapping when the key is not written in the file.
    """
    summary = "; ".join(f"{format_path(loc)}: {message}" for loc, message in problems)
    return PydanticCustomError(
        "config_rule", "{summary}", {"summary": summary, "problems": tuple(problems)}
    )


def validate_with_rules(
    handler: Callable[[Any], Any], value: Any, problems: Sequence[tuple[Loc, str]]
) -> Any:
    """For a ``mode="wrap"`` validator: validate ``value`` and report ``problems`` too.

    A model validator only runs once every field is valid; a rule checked on the raw input in a
    wrap validator is reported together with the errors inside the field (e.g. a duplicate
    username alongside a bad password elsewhere in the list). Locations are relative to the
    field.
    """
    extra = [
        InitErrorDetails(
            type=PydanticCustomError(
                "config_rule", "{summary}", {"summary": message, "problems": ((loc, message),)}
            ),
            loc=(),
            input=value,
        )
        for loc, message in problems
    ]
    try:
        result = handler(value)
    except ValidationError as exc:
        inner = [
            InitErrorDetails(
                type=PydanticCustomError(err["type"], err["msg"], err.get("ctx")),
                loc=err["loc"],
                input=err["input"],
            )
            for err in exc.errors(include_url=False)
        ]
        raise ValidationError.from_exception_data(exc.title, inner + extra) from None
    if extra:
        raise ValidationError.from_exception_data("rules", extra)
    return result


# --------------------------------------------------------------------------------------------
# Scalars (YAML 1.2 core schema, decimal-only integers)

_YAML_TAG = "tag:yaml.org,2002:"
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    f"{sign}.{word}": sign_value * math.inf
    for sign, sign_value in (("", 1.0), ("+", 1.0), ("-", -1.0))
    for word in ("inf", "Inf", "INF")
} | {".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}
_DECIMAL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,300})")
_FLOAT = re.compile(
    r"[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
)
_NUMBER_START = frozenset("0123456789-+.")
_WORD_START = frozenset("~nNtTfF")


def _plain_scalar(text: str) -> Any:
    """The value of an untagged plain scalar."""
    if not text:
        return None
    first = text[0]
    if first in _NUMBER_START:
        if _DECIMAL_INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        return _SPECIAL_FLOATS.get(text, text)
    if first in _WORD_START:
        if text in _NULLS:
            return None
        return _BOOLS.get(text, text)
    return text


class _TagProblem(Exception):
    pass


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _tagged_scalar(tag: str, text: str) -> Any:
    """The value of a scalar with an explicit standard tag (``!!str 5``)."""
    if tag == "!" or tag == _YAML_TAG + "str":
        return text
    if tag == _YAML_TAG + "int":
        for base in (10, 0):
            try:
                return int(text.replace("_", ""), base)
            except ValueError:
                pass
        raise _TagProblem(f"!!int: {json.dumps(text)} is not an integer")
    if tag == _YAML_TAG + "float":
        special = _SPECIAL_FLOATS.get(text)
        if special is not None:
            return special
        try:
            return float(text)
        except ValueError:
            raise _TagProblem(f"!!float: {json.dumps(text)} is not a number") from None
    if tag == _YAML_TAG + "bool":
        if text in _BOOLS:
            return _BOOLS[text]
        raise _TagProblem(f"!!bool: {json.dumps(text)} is not true or false")
    if tag == _YAML_TAG + "null":
        if text in _NULLS:
            return None
        raise _TagProblem(f"!!null: {json.dumps(text)} is not null")
    raise _TagProblem(f'unknown tag "{_show_tag(tag)}"')


# --------------------------------------------------------------------------------------------
# Loading


class _Invalid:
    """Stands in the data for a value that could not be loaded (already reported)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()
_OPEN = object()  # an anchor whose collection is still being built
_MERGE = object()  # the merge key "<<"
_SKIP = object()  # a key whose entry is dropped (reported already)


class _Where:
    """Positions (1-based) of one mapping or sequence: its start, and of its entries.

    For a mapping ``entries`` maps each key to (key line, key col, value line, value col); for
    a sequence it lists (line, col) of each item.
    """

    __slots__ = ("col", "entries", "file", "line")

    def __init__(self, file: str, line: int, col: int, entries: Any) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.entries = entries


class _SecretRef:
    """Stands in the data for a ``!secret NAME`` until the secrets are known."""

    __slots__ = ("col", "file", "line", "loc", "name")

    def __init__(self, name: str, file: str, line: int, col: int, loc: Loc) -> None:
        self.name = name
        self.file = file
        self.line = line
        self.col = col
        self.loc = loc


@dataclass(slots=True)
class _LoadContext:
    root_dir: Path
    environ: Mapping[str, str]
    secret_tag: bool = False  # !secret is known (a source of secrets was given)
    in_secrets_file: bool = False
    secret_refs: list[_SecretRef] = field(default_factory=list)
    where: dict[int, _Where] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    unresolved: list[Loc] = field(default_factory=list)
    keep: list[Any] = field(default_factory=list)  # dropped containers: their ids stay unique
    stack: list[Path] = field(default_factory=list)
    included: int = 0
    count: int = 0


class _Frame:
    """A mapping or sequence being built."""

    __slots__ = (
        "anchor",
        "bad_tag",
        "data",
        "entries",
        "is_map",
        "key",
        "key_pos",
        "loc",
        "mark",
        "merges",
        "start_count",
    )

    def __init__(self, is_map: bool, loc: Loc, mark: Any, anchor: Any, count: int) -> None:
        self.is_map = is_map
        self.data: Any = {} if is_map else []
        self.entries: Any = {} if is_map else []
        self.loc = loc
        self.mark = mark
        self.anchor = anchor
        self.start_count = count
        self.key: Any = None
        self.key_pos: tuple[int, int] | None = None  # set while the value is awaited
        self.merges: list[tuple[Any, Any]] = []
        self.bad_tag: str | None = None


class _PureParser(Reader, Scanner, Parser):
    """ruamel.yaml's pure-Python reader, scanner and parser (used without libyaml)."""

    processing_version = (1, 2)

    def __init__(self, text: str) -> None:
        self.comment_handling = None
        self._resolver = self  # the parser asks it for processing_version
        Reader.__init__(self, text, loader=self)
        Scanner.__init__(self, loader=self)
        Parser.__init__(self, loader=self)


_PARSERS: list[Any] = [_PureParser] if CParser is None else [CParser, _PureParser]


class _Abort(Exception):
    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


class _Builder:
    """Builds plain values and their positions from the parser events of one file."""

    def __init__(self, ctx: _LoadContext, file: str, real: Path, base: Loc) -> None:
        self.ctx = ctx
        self.file = file
        self.real = real
        self.base = base
        self.anchors: dict[str, Any] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.root_pos = (1, 1)

    # -- helpers

    def error(self, mark: Any, loc: Loc, message: str) -> None:
        self.ctx.errors.append(
            ConfigError(self.file, mark.line + 1, mark.column + 1, format_path(loc), message)
        )

    def invalid(self, mark: Any, loc: Loc, message: str) -> _Invalid:
        self.error(mark, loc, message)
        self.ctx.unresolved.append(loc)
        return _INVALID

    def abort(self, mark: Any, message: str) -> _Abort:
        return _Abort(ConfigError(self.file, mark.line + 1, mark.column + 1, "", message))

    def child_loc(self) -> Loc:
        if not self.stack:
            return self.base
        top = self.stack[-1]
        if not top.is_map:
            return (*top.loc, len(top.data))
        if top.key_pos is None:  # a key is being read
            return top.loc
        key = top.key
        if key is _MERGE or key is _SKIP:
            return top.loc
        return (*top.loc, key)

    def count(self, n: int, mark: Any) -> None:
        self.ctx.count += n
        if self.ctx.count > MAX_VALUES:
            raise self.abort(mark, f"the document expands to more than {MAX_VALUES} values")

    # -- the event loop

    def build(self, parser: Any) -> Any:
        get_event = parser.get_event
        documents = 0
        while True:
            ev = get_event()
            kind = type(ev)
            if kind is ScalarEvent:
                self.scalar(ev)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self.start(ev, kind is MappingStartEvent)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self.end()
            elif kind is AliasEvent:
                self.alias(ev)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise self.abort(ev.start_mark, "expected a single YAML document, found more")
            elif kind is StreamEndEvent:
                return self.root

    def scalar(self, ev: Any) -> None:
        mark = ev.start_mark
        self.count(1, mark)
        tag = ev.tag
        text: str = ev.value
        if tag is None:
            if ev.implicit[0]:
                value = _plain_scalar(text)
                if text == "<<" and self.stack:
                    top = self.stack[-1]
                    if top.is_map and top.key_pos is None:
                        value = _MERGE
            else:
                value = text
        elif tag == "!env":
            value = self.env(text, mark)
        elif tag == "!include":
            value = self.include(text, mark)
        elif tag == "!secret" and self.ctx.secret_tag:
            value = self.secret(text, mark)
        else:
            try:
                value = _tagged_scalar(tag, text)
            except _TagProblem as problem:
                value = self.invalid(mark, self.child_loc(), str(problem))
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (value, 1)
        self.add(value, mark)

    def start(self, ev: Any, is_map: bool) -> None:
        mark = ev.start_mark
        if len(self.stack) >= MAX_DEPTH:
            raise self.abort(mark, f"nested deeper than {MAX_DEPTH} levels")
        self.count(1, mark)
        frame = _Frame(is_map, self.child_loc(), mark, ev.anchor, self.ctx.count)
        tag = ev.tag
        if tag is not None and tag != "!" and tag != _YAML_TAG + ("map" if is_map else "seq"):
            if tag in ("!env", "!include") or (tag == "!secret" and self.ctx.secret_tag):
                frame.bad_tag = (
                    f"{tag} needs a single name, not a {'mapping' if is_map else 'list'}"
                )
            else:
                frame.bad_tag = f'unknown tag "{_show_tag(tag)}"'
        if ev.anchor is not None:
            self.anchors[ev.anchor] = _OPEN
        self.ctx.where[id(frame.data)] = _Where(
            self.file, mark.line + 1, mark.column + 1, frame.entries
        )
        self.stack.append(frame)

    def end(self) -> None:
        frame = self.stack.pop()
        value: Any = frame.data
        if frame.merges:
            self.merge(frame)
        if frame.bad_tag is not None:
            self.ctx.keep.append(value)
            value = self.invalid(frame.mark, frame.loc, frame.bad_tag)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (value, self.ctx.count - frame.start_count + 1)
        self.add(value, frame.mark)

    def alias(self, ev: Any) -> None:
        mark = ev.start_mark
        found = self.anchors.get(ev.anchor)
        if found is None:
            value = self.invalid(mark, self.child_loc(), f'undefined alias "*{ev.anchor}"')
        elif found is _OPEN:
            message = f'alias "*{ev.anchor}" refers to the mapping or list containing it'
            value = self.invalid(mark, self.child_loc(), message)
        else:
            value, size = found
            self.count(size, mark)
        self.add(value, mark)

    def add(self, value: Any, mark: Any) -> None:
        """Put a finished value into the collection being built (or make it the root)."""
        line, col = mark.line + 1, mark.column + 1
        if not self.stack:
            self.root = value
            self.root_pos = (line, col)
            return
        top = self.stack[-1]
        if not top.is_map:
            top.data.append(value)
            top.entries.append((line, col))
            return
        if top.key_pos is None:  # this value is a key
            if value is not _MERGE and value is not _INVALID:
                try:
                    hash(value)
                except TypeError:
                    self.ctx.keep.append(value)
                    self.error(mark, top.loc, "mapping keys must be single values, not collections")
                    value = _SKIP
            top.key = _SKIP if value is _INVALID else value
            top.key_pos = (line, col)
            return
        key = top.key
        key_line, key_col = top.key_pos
        top.key_pos = None
        if key is _SKIP:
            return
        if key is _MERGE:
            top.merges.append((value, mark))
            return
        data = top.data
        if key in data:
            first = top.entries[key][0]
            message = f'duplicate key "{key}" (first defined on line {first})'
            loc = (*top.loc, key)
            self.ctx.errors.append(
                ConfigError(self.file, key_line, key_col, format_path(loc), message)
            )
            return
        data[key] = value
        top.entries[key] = (key_line, key_col, line, col)

    def merge(self, frame: _Frame) -> None:
        """Apply ``<<`` keys: explicit keys win, then earlier merged mappings."""
        data, entries = frame.data, frame.entries
        for value, mark in frame.merges:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if source is _INVALID:
                    continue
                if not isinstance(source, dict):
                    message = "<< needs a mapping or a list of mappings"
                    self.error(mark, frame.loc, message)
                    continue
                where = self.ctx.where.get(id(source))
                same_file = where is not None and where.file == self.file
                for key, item in source.items():
                    if key not in data:
                        data[key] = item
                        pos = where.entries.get(key) if same_file and where else None
                        here = (mark.line + 1, mark.column + 1)
                        entries[key] = pos if pos is not None else (*here, *here)

    # -- tags

    def env(self, text: str, mark: Any) -> Any:
        name = text.strip()
        if not name:
            return self.invalid(mark, self.child_loc(), "!env needs an environment variable name")
        name, has_default, default = name.partition(":-")
        value = self.ctx.environ.get(name)
        if value is None and has_default:
            return default
        if value is None:
            message = f'environment variable "{name}" is not set'
            return self.invalid(mark, self.child_loc(), message)
        return value

    def secret(self, text: str, mark: Any) -> Any:
        loc = self.child_loc()
        name = text.strip()
        if not name:
            return self.invalid(mark, loc, "!secret needs the name of a secret")
        if self.ctx.in_secrets_file:
            return self.invalid(mark, loc, "!secret cannot be used in the secrets file")
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.key_pos is None:
            return self.invalid(mark, loc, "!secret cannot be used as a key")
        ref = _SecretRef(name, self.file, mark.line + 1, mark.column + 1, loc)
        self.ctx.secret_refs.append(ref)
        return ref

    def include(self, text: str, mark: Any) -> Any:
        ctx = self.ctx
        loc = self.child_loc()
        rel = text.strip()
        if not rel:
            return self.invalid(mark, loc, "!include needs a file name")
        target = (self.real.parent / rel).resolve()
        if not target.is_relative_to(ctx.root_dir):
            return self.invalid(mark, loc, f'!include "{rel}" is outside the configuration folder')
        if target in ctx.stack:
            return self.invalid(mark, loc, f'!include "{rel}" includes itself (a cycle)')
        if len(ctx.stack) > MAX_INCLUDE_DEPTH:
            message = f"!include nested deeper than {MAX_INCLUDE_DEPTH} files"
            return self.invalid(mark, loc, message)
        if ctx.included >= MAX_INCLUDED_FILES:
            return self.invalid(mark, loc, f"more than {MAX_INCLUDED_FILES} !include tags")
        if not target.is_file():
            return self.invalid(mark, loc, f'!include "{rel}": no such file')
        ctx.included += 1
        shown = os.path.normpath(os.path.join(os.path.dirname(self.file), rel))
        try:
            value, _pos = _parse_file(target, shown, ctx, loc)
        except ConfigErrors as exc:
            ctx.errors.extend(exc.errors)
            ctx.unresolved.append(loc)
            return _INVALID
        return value


def _read_text(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        message = f"cannot read file: {exc.strerror or exc}"
        raise ConfigErrors([ConfigError(shown, 1, 1, "", message)]) from None
    if len(raw) > MAX_FILE_BYTES:
        message = f"file is larger than {MAX_FILE_BYTES} bytes"
        raise ConfigErrors([ConfigError(shown, 1, 1, "", message)])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise ConfigErrors(
            [ConfigError(shown, line, col, "", "file is not valid UTF-8 text")]
        ) from None


def _yaml_error(exc: YAMLError, shown: str, text: str) -> ConfigError:
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        context = ""
        if exc.context:
            start = exc.context_mark
            if start is not None and (start.line, start.column) != (mark.line, mark.column):
                where = f" that starts on line {start.line + 1}, column {start.column + 1}"
            else:
                where = ""
            context = f" ({exc.context}{where})"
        return ConfigError(
            shown, mark.line + 1, mark.column + 1, "", f"YAML syntax error: {problem}{context}"
        )
    position = getattr(exc, "position", None)
    if isinstance(position, int) and 0 <= position <= len(text):
        before = text[:position]
        line = before.count("\n") + 1
        col = position - (before.rfind("\n") + 1) + 1
        reason = getattr(exc, "reason", None) or "unreadable character"
        return ConfigError(shown, line, col, "", f"YAML syntax error: {reason}")
    return ConfigError(shown, 1, 1, "", f"YAML syntax error: {exc}")


def _parse_file(
    path: Path, shown: str, ctx: _LoadContext, base: Loc
) -> tuple[Any, tuple[int, int]]:
    """Parse one file (the main one or an included one): its value and position."""
    text = _read_text(path, shown)
    builder = _Builder(ctx, shown, path, base)
    parser: Any = None
    ctx.stack.append(path)
    try:
        parser = _PARSERS[0](text)
        root = builder.build(parser)
    except YAMLError as exc:
        raise ConfigErrors([_yaml_error(exc, shown, text)]) from None
    except _Abort as exc:
        raise ConfigErrors([exc.error]) from None
    finally:
        ctx.stack.pop()
        dispose = getattr(parser, "dispose", None)
        if dispose is not None:
            dispose()
    return root, builder.root_pos


# --------------------------------------------------------------------------------------------
# Secrets

_NOT_SCALAR = (dict, list, _Invalid, _SecretRef, type(None))


def _read_secrets(
    path: Path, shown: str, ctx: _LoadContext
) -> tuple[dict[str, Any], frozenset[str]] | None:
    """The ``NAME: value`` entries of a secrets file, and the names whose value is broken.

    Mistakes in the file are added to ``ctx.errors``; None when the file is unusable.
    """
    inner = _LoadContext(
        root_dir=path.parent, environ=ctx.environ, secret_tag=True, in_secrets_file=True
    )
    try:
        data, (line, col) = _parse_file(path, shown, inner, ())
    except ConfigErrors as exc:
        ctx.errors.extend(exc.errors)
        return None
    ctx.errors.extend(inner.errors)
    if data is None:
        return {}, frozenset()
    doc = YamlDocument(shown, data, _where=inner.where, _root=(shown, line, col))
    if not isinstance(data, dict):
        message = f"expected a mapping of NAME: value, got {_show(data)}"
        ctx.errors.append(ConfigError(shown, line, col, "", message))
        return None
    table: dict[str, Any] = {}
    broken: set[str] = set()
    for key, value in data.items():
        name = str(key)
        if value is _INVALID:
            broken.add(name)
        elif isinstance(value, _NOT_SCALAR):
            broken.add(name)
            got = "an empty value" if value is None else _show(value)
            message = f"expected a single value (text or a number), got {got}"
            ctx.errors.append(doc.error_at((key,), message))
        else:
            table[name] = value
    return table, frozenset(broken)


def _secrets_for(
    ctx: _LoadContext,
    data: Any,
    shown: str,
    real: Path,
    root: tuple[str, int, int],
    secrets: Mapping[str, Any] | str | os.PathLike[str] | None,
    secrets_key: str | None,
) -> tuple[Mapping[str, Any] | None, frozenset[str], str | None]:
    """The secrets for ``!secret``: (table, broken names, message for each use when None).

    A None message with a None table means the problem was reported once already.
    """
    if isinstance(secrets, Mapping):
        return secrets, frozenset(), None
    if secrets is not None:
        file = os.fspath(secrets)
        found = Path(file)
        if not found.is_file():
            ctx.errors.append(ConfigError(shown, 1, 1, "", f'secrets file "{file}" does not exist'))
            return None, frozenset(), None
        read = _read_secrets(found.resolve(), file, ctx)
        return (None, frozenset(), None) if read is None else (read[0], read[1], None)
    assert secrets_key is not None
    named = data.get(secrets_key) if isinstance(data, dict) else None
    if named is None:
        return None, frozenset(), f'!secret needs a secrets file ("{secrets_key}: FILE")'
    if not isinstance(named, str) or not named.strip():
        return None, frozenset(), None  # the model reports the bad value
    target = (real.parent / named).resolve()
    if not target.is_file():
        doc = YamlDocument(shown, data, _where=ctx.where, _root=root)
        message = f'secrets file "{named}" does not exist'
        ctx.errors.append(doc.error_at((secrets_key,), message))
        ctx.unresolved.append((secrets_key,))
        return None, frozenset(), None
    read = _read_secrets(target, os.path.normpath(os.path.join(os.path.dirname(shown), named)), ctx)
    if read is None:
        return None, frozenset(), None
    return read[0], read[1], None


def _resolve_secrets(
    ctx: _LoadContext,
    data: Any,
    table: Mapping[str, Any] | None,
    broken: frozenset[str],
    message: str | None,
) -> Any:
    """Replace every ``!secret`` placeholder in ``data`` by its value (or an invalid mark)."""
    resolved: dict[int, Any] = {}

    def value_of(ref: _SecretRef) -> Any:
        known = resolved.get(id(ref))
        if known is not None:
            return known[0]
        problem: str | None = None
        value: Any = _INVALID
        if table is None:
            problem = message
        elif ref.name in table:
            value = table[ref.name]
        elif ref.name not in broken:
            problem = f'unknown secret "{ref.name}"'
            guess = _suggest(ref.name, table)
            if guess is not None:
                problem += f' (did you mean "{guess}"?)'
        if value is _INVALID:
            ctx.unresolved.append(ref.loc)
            if problem is not None:
                error = ConfigError(ref.file, ref.line, ref.col, format_path(ref.loc), problem)
                ctx.errors.append(error)
        resolved[id(ref)] = (value,)
        return value

    if isinstance(data, _SecretRef):
        return value_of(data)
    seen: set[int] = set()
    todo: list[Any] = [data]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in list(items):
            if isinstance(item, _SecretRef):
                node[key] = value_of(item)
            elif isinstance(item, dict | list):
                todo.append(item)
    return data


def load_yaml(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    secrets: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    secrets_key: str | None = None,
) -> YamlDocument:
    """Load one YAML file (and what it includes) into plain values, keeping positions.

    ``environ`` (default ``os.environ``) resolves ``!env``. ``!secret`` takes its values from
    ``secrets``: a mapping, or the path of a YAML secrets file; or else, with ``secrets_key``,
    from the file named (relative to the document's folder) by that top-level key of the
    document; with neither, ``!secret`` is an unknown tag. Raises :class:`ConfigErrors` when
    the file cannot be read or is not well-formed YAML; other mistakes (duplicate keys, unset
    variables, unknown secrets, bad includes, unknown tags) are kept in
    :attr:`YamlDocument.errors` so that :func:`validate` reports them together with the model's
    findings.
    """
    shown = os.fspath(path)
    real = Path(shown).resolve()
    ctx = _LoadContext(
        root_dir=real.parent,
        environ=os.environ if environ is None else environ,
        secret_tag=secrets is not None or secrets_key is not None,
    )
    data, (line, col) = _parse_file(real, shown, ctx, ())
    root = (shown, line, col)
    if ctx.secret_tag:
        table, broken, message = _secrets_for(ctx, data, shown, real, root, secrets, secrets_key)
        if ctx.secret_refs:
            data = _resolve_secrets(ctx, data, table, broken, message)
    return YamlDocument(
        shown,
        data,
        tuple(ctx.errors),
        tuple(ctx.unresolved),
        _where=ctx.where,
        _root=root,
        _keep=ctx.keep,
    )


# --------------------------------------------------------------------------------------------
# Documents


@dataclass(frozen=True, slots=True, eq=False)
class YamlDocument:
    """A loaded file: its plain value, the positions of its parts, and mistakes found so far."""

    file: str
    """The file name as given to :func:`load_yaml`; errors print it unchanged."""
    data: Any
    """The content as plain dicts, lists, str, int, float, bool and None."""
    errors: tuple[ConfigError, ...] = ()
    """Mistakes found while loading: duplicate keys, unknown tags, unset !env, bad !include."""
    unresolved: tuple[Loc, ...] = ()
    """Locations whose value could not be loaded (their mistakes are in ``errors``)."""
    _where: Mapping[int, _Where] = field(default_factory=dict, repr=False)
    _root: tuple[str, int, int] | None = field(default=None, repr=False)
    _keep: Any = field(default=None, repr=False)

    @classmethod
    def from_data(cls, data: Any, file: str) -> YamlDocument:
        """Wrap values that did not come from :func:`load_yaml` (every position is 1:1)."""
        return cls(file, data)

    def position(self, loc: Sequence[str | int], *, key: bool = False) -> tuple[str, int, int]:
        """File, line and column (1-based) of the value at ``loc``.

        With ``key``, the position of the mapping key itself. Where ``loc`` leaves the data (a
        missing key), the position of the deepest mapping or sequence reached.
        """
        file, line, col, _found = self._walk(loc, key)
        return file, line, col

    def item_positions(self, seq: Sequence[Any]) -> tuple[tuple[str, int, int], ...] | None:
        """File, line and column of each item of a list of this document (by identity).

        An item that is the content of an ``!include`` is placed at the start of that content.
        None for a list that did not come from this document.
        """
        here = self._where.get(id(seq))
        if here is None or not isinstance(here.entries, list):
            return None
        file = here.file
        where = self._where
        out = [(file, line, col) for line, col in here.entries]
        for i, item in enumerate(seq):
            if type(item) is dict or type(item) is list:
                inner = where.get(id(item))
                if inner is not None and inner.file != file:
                    out[i] = (inner.file, inner.line, inner.col)
        return tuple(out)

    def error_at(self, loc: Sequence[str | int], message: str, *, key: bool = False) -> ConfigError:
        """A :class:`ConfigError` at ``loc``, e.g. for checks made after validation."""
        file, line, col = self.position(loc, key=key)
        return ConfigError(file, line, col, format_path(loc), message)

    def _walk(self, loc: Sequence[str | int], want_key: bool) -> tuple[str, int, int, bool]:
        node = self.data
        file, line, col = self._root or (self.file, 1, 1)
        where = self._where
        last = len(loc) - 1
        for i, seg in enumerate(loc):
            here = where.get(id(node)) if isinstance(node, dict | list) else None
            pos: tuple[int, ...] | None = None
            if isinstance(node, dict):
                try:
                    if seg not in node:
                        seg = _written_key(node, seg)
                        if seg is None:
                            return file, line, col, False
                except TypeError:
                    return file, line, col, False
                child = node[seg]
                if here is not None:
                    pos = here.entries.get(seg)
                    if pos is not None:
                        pos = pos[:2] if want_key and i == last else pos[2:]
            elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
                child = node[seg]
                if here is not None and seg < len(here.entries):
                    pos = here.entries[seg]
            else:
                return file, line, col, False
            if here is not None and pos is not None:
                file, (line, col) = here.file, pos[:2]
            if not (want_key and i == last) and isinstance(child, dict | list):
                inner = where.get(id(child))
                if inner is not None and inner.file != file:  # the content of an !include
                    file, line, col = inner.file, inner.line, inner.col
            node = child
        return file, line, col, True


def _written_key(node: dict[Any, Any], seg: Any) -> Any:
    """The key of ``node`` written as a number whose text is ``seg`` (models take keys as text)."""
    if isinstance(seg, str) and _DECIMAL_INT.fullmatch(seg):
        number = int(seg)
        if number in node:
            return number
    return None


# --------------------------------------------------------------------------------------------
# Validation


_EXPECTED: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "int_parsing_size": "an integer of reasonable size",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "time_type": "a time (HH:MM or HH:MM:SS)",
    "time_parsing": "a time (HH:MM or HH:MM:SS)",
    "datetime_type": "a date and time",
    "datetime_parsing": "a date and time",
    "datetime_from_date_parsing": "a date and time",
    "timezone_naive": "a date and time without time zone",
    "timezone_aware": "a date and time with a time zone",
    "url_type": "a URL",
    "url_parsing": "a URL",
    "url_scheme": "a URL",
    "uuid_type": "a UUID",
    "uuid_parsing": "a UUID",
    "ip_any_address": "an IPv4 or IPv6 address",
    "ip_v4_address": "an IPv4 address",
    "ip_v6_address": "an IPv6 address",
    "ip_any_network": "an IPv4 or IPv6 network",
    "ip_v4_network": "an IPv4 network",
    "ip_v6_network": "an IPv6 network",
    "none_required": "nothing",
}


def _show(value: Any) -> str:
    """How a bad value is quoted back to the admin, in YAML terms."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | set | frozenset):
        return "a list"
    if isinstance(value, date):
        return value.isoformat()
    return f"a {type(value).__name__}"


def _quote_all(values: Iterable[Any]) -> str:
    return ", ".join(json.dumps(v) if isinstance(v, str) else _show(v) for v in values)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional around a type."""
    for _ in range(16):
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
    return tp


def _type_at(model_cls: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The annotation of the value at ``loc`` inside ``model_cls``, or None if unknown."""
    tp: Any = model_cls
    for seg in loc:
        tp = _step(_unwrap(tp), seg)
        if tp is None:
            return None
    return _unwrap(tp)


def _step(tp: Any, seg: str | int) -> Any:
    """The annotation one step (key, index or union tag) inside ``tp``, or None."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        info = _field_named(tp, seg)
        return None if info is None else info.annotation
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Union or origin is UnionType:
        tagged = _tagged_choice(args, seg)  # a discriminated union puts the tag in the loc
        if tagged is not None:
            return tagged
        inside = [found for arg in args if (found := _step(_unwrap(arg), seg)) is not None]
        return inside[0] if len(inside) == 1 else None
    if origin in (list, set, frozenset, Sequence) and args:
        return args[0] if isinstance(seg, int) else None
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0] if isinstance(seg, int) else None
        if isinstance(seg, int) and 0 <= seg < len(args):
            return args[seg]
        return None
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


def _field_named(model_cls: type[BaseModel], name: Any) -> Any:
    """The field of ``model_cls`` written as ``name`` in a file (its alias, else its name)."""
    if not isinstance(name, str):
        return None
    for field_name, info in model_cls.model_fields.items():
        if (info.alias or field_name) == name:
            return info
    return None


def _tagged_choice(choices: Sequence[Any], tag: Any) -> Any:
    """The choice of a discriminated union marked with ``Tag(tag)``, or None."""
    for choice in choices:
        if get_origin(choice) is Annotated and any(
            isinstance(m, Tag) and m.tag == tag for m in choice.__metadata__
        ):
            return choice
    return None


def _plain_at(data: Any, loc: Sequence[str | int]) -> Any:
    for seg in loc:
        if isinstance(data, dict) and seg in data:
            data = data[seg]
            continue
        if isinstance(data, list) and isinstance(seg, int) and 0 <= seg < len(data):
            data = data[seg]
            continue
        return None
    return data


def _suggest(word: Any, candidates: Iterable[str]) -> str | None:
    if not isinstance(word, str):
        return None
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unknown_key(model_cls: type[BaseModel], doc: YamlDocument, loc: tuple[str | int, ...]) -> str:
    key = loc[-1]
    parent = _type_at(model_cls, loc[:-1])
    text = f'unknown key "{key}"'
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return text
    present = _plain_at(doc.data, loc[:-1])
    written = [info.alias or name for name, info in parent.model_fields.items() if not info.exclude]
    fields = [name for name in written if not (isinstance(present, dict) and name in present)]
    guess = _suggest(key, fields)
    if guess is not None:
        return f'{text} (did you mean "{guess}"?)'
    if fields:
        return f"{text} (allowed: {', '.join(fields)})"
    return text


def _message(
    err: Mapping[str, Any], model_cls: type[BaseModel], doc: YamlDocument
) -> tuple[str, bool]:
    """The admin's message for one pydantic error, and whether it points at the key."""
    kind: str = err["type"]
    loc = tuple(err["loc"])
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    got = _show(value)
    if kind == "missing":
        return f'missing required key "{loc[-1]}"' if loc else "missing value", False
    if kind == "extra_forbidden":
        return _unknown_key(model_cls, doc, loc), True
    if kind == "invalid_key":
        return f"keys must be strings, got {got}", True
    if kind == "literal_error" or kind == "enum":
        tp = _type_at(model_cls, loc)
        options: list[Any] = []
        if get_origin(tp) is Literal:
            options = list(get_args(tp))
        elif isinstance(tp, type) and hasattr(tp, "__members__"):
            options = [m.value for m in tp.__members__.values()]
        if options:
            text = f"expected one of {_quote_all(options)}, got {got}"
            guess = _suggest(value, [o for o in options if isinstance(o, str)])
            return (f'{text} (did you mean "{guess}"?)' if guess else text), False
        return f"expected one of {ctx.get('expected', '?')}, got {got}", False
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}", False
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {got}", False
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}, got {got}", False
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {got}", False
    if kind == "less_than":
        return f"must be less than {ctx['lt']}, got {got}", False
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty", False
        return f"must be at least {ctx['min_length']} characters long, got {got}", False
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters long, got {got}", False
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''}", False
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"must have at most {n} item{'s' if n != 1 else ''}", False
    if kind == "string_pattern_mismatch":
        return f"does not match the pattern {ctx.get('pattern')}, got {got}", False
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error") or err["msg"])
        return text, False
    return str(err["msg"]), False


def _under(loc: Loc, prefixes: Sequence[Loc]) -> bool:
    return any(loc[: len(p)] == p for p in prefixes)


def _sort_key(main: str) -> Any:
    def key(e: ConfigError) -> tuple[int, str, int, int]:
        return (0 if e.file == main else 1, e.file, e.line, e.col)

    return key


def _errors_from(
    exc: ValidationError, model_cls: type[BaseModel], doc: YamlDocument
) -> Iterator[ConfigError]:
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        if err.get("input") is _INVALID or (doc.unresolved and _under(loc, doc.unresolved)):
            continue  # a value the loader could not load, reported already
        if err["type"] == "config_rule":
            for sub_loc, text in err["ctx"]["problems"]:
                full = (*loc, *sub_loc)
                yield doc.error_at(full, text)
            continue
        text, at_key = _message(err, model_cls, doc)
        yield doc.error_at(loc, text, key=at_key)


def validate(
    model_cls: type[M],
    data: YamlDocument | Any,
    file: str | None = None,
    *,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Validate a loaded document (or a tree, naming it ``file``) into ``model_cls``.

    Raises :class:`ConfigErrors` with every mistake found: those of the loader (duplicate
    keys, tags) and those of the model, in file order. An empty document counts as an empty
    mapping. ``context`` is handed to pydantic validators (``info.context``).
    """
    doc = (
        data
        if isinstance(data, YamlDocument)
        else YamlDocument.from_data(data, file if file is not None else "<data>")
    )
    errors = list(doc.errors)
    value = {} if doc.data is None else doc.data
    result: M | None = None
    try:
        result = model_cls.model_validate(value, context=dict(context) if context else None)
    except ValidationError as exc:
        errors.extend(_errors_from(exc, model_cls, doc))
    if errors or result is None:
        unique = list(dict.fromkeys(errors))
        unique.sort(key=_sort_key(doc.file))
        raise ConfigErrors(unique)
    return result


def load_model(
    model_cls: type[M],
    path: str | os.PathLike[str],
    *,
    context: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> M:
    """:func:`load_yaml` then :func:`validate`; raises :class:`ConfigErrors`."""
    return validate(model_cls, load_yaml(path, environ=environ), context=context)
