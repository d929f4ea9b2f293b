"""YAML configuration files with positions, validated into typed models.

The admin's YAML is the admin's responsibility, so every mistake in it is reported as a
:class:`ConfigError` carrying ``file:line:col``, the dotted path of the setting and a message
written for a person, never as a traceback. All mistakes found in one pass are reported
together in :class:`ConfigErrors`.

Loading (:func:`load_yaml`) uses ruamel.yaml's round-trip constructor, so every mapping and
sequence keeps the line and column of its keys and items (``.lc.key(k)``, ``.lc.value(k)``,
``.lc.item(i)``). The libyaml-based parser is used when available (it is several times faster
than the pure-Python scanner); comments are not needed and are not kept.

YAML rules on top of YAML 1.2:

* duplicate keys in a mapping are errors, reported at the second key;
* an integer is an integer only when written in plain decimal (``5060``, ``-1``). Anything
  else that YAML would read as an integer (``0123``, ``0x1F``, ``0o17``, ``1_000``) is kept as
  the text written, so a dialled number or PIN with a leading zero is never changed. Numeric
  settings still accept ``0123`` (as 123) because validation parses the text;
* ``!env NAME`` is replaced by the value of environment variable NAME (a string); an unset
  variable is an error;
* ``!include relative/file.yaml`` is replaced by the content of that file, which must lie
  inside the folder of the configuration file given to :func:`load_yaml` (also after symbolic
  links are followed). Errors inside an included file name that file and its positions;
* any other tag is an error.

Validation (:func:`validate`) turns the tree into plain Python values and runs a pydantic v2
model over it, mapping each pydantic error location back to a position: the value's position
for a bad value, the key's position for an unknown key, the enclosing mapping's position for a
missing key. Models raise :func:`rule_violation` from their validators to report cross-field
rules at the key that is wrong.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from ruamel.yaml.comments import CommentedMap, CommentedSeq, CommentedSet, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import Node, ScalarNode
from ruamel.yaml.parser import Parser
from ruamel.yaml.reader import Reader, ReaderError
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarbool import ScalarBoolean
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
]

Loc = tuple[str | int, ...]
"""A location inside a document: mapping keys and sequence indices from the root."""

M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest configuration file read, included files counted one by one."""
MAX_VALUES = 1_000_000
"""Most values a document may expand to (aliases included): stops alias bombs."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted."""
MAX_INCLUDE_DEPTH = 16
"""Deepest chain of ``!include`` accepted."""
MAX_INCLUDED_FILES = 256
"""Most ``!include`` tags resolved for one configuration file."""

_DECIMAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_INT_TAG = "tag:yaml.org,2002:int"


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


# --------------------------------------------------------------------------------------------
# Loading


class _Unresolved:
    """Stands in the tree for a tag that could not be resolved (unset !env, bad !include)."""

    __slots__ = ("at_tag", "errors")

    def __init__(self, errors: tuple[ConfigError, ...], at_tag: bool) -> None:
        self.errors = errors
        # True: one error about the tag itself, whose path is the tag's place in the tree.
        # False: errors inside an included file, already complete.
        self.at_tag = at_tag


class _Invalid:
    """What an unresolved value becomes in the plain data: no model field accepts it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unresolved>"


_INVALID = _Invalid()


@dataclass(slots=True)
class _Dupe:
    file: str
    line: int
    col: int
    key: Any
    first_line: int | None


@dataclass(slots=True)
class _LoadContext:
    root_dir: Path
    environ: Mapping[str, str]
    sources: dict[int, str] = field(default_factory=dict)
    dupes: dict[int, tuple[Any, list[_Dupe]]] = field(default_factory=dict)
    stack: list[Path] = field(default_factory=list)
    keep: list[Any] = field(default_factory=list)
    included: int = 0


class _Constructor(RoundTripConstructor):
    """Round-trip constructor with our tags, decimal-only integers and collected duplicates."""

    _ctx: _LoadContext
    _file: str
    _dir: Path

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key not in mapping:
            return True
        first_line: int | None
        try:
            first_line = mapping.lc.key(key)[0] + 1
        except (KeyError, TypeError):
            first_line = None
        mark = key_node.start_mark
        dupe = _Dupe(self._file, mark.line + 1, mark.column + 1, key, first_line)
        entry = self._ctx.dupes.setdefault(id(mapping), (mapping, []))
        entry[1].append(dupe)
        return False

    def _tag_error(self, node: Node, message: str) -> _Unresolved:
        mark = node.start_mark
        return _Unresolved(
            (ConfigError(self._file, mark.line + 1, mark.column + 1, "", message),), True
        )

    def construct_decimal_int(self, node: Any) -> int | str:
        text = str(node.value)
        if _DECIMAL_INT.fullmatch(text):
            return int(text)
        return text

    def construct_env(self, node: Any) -> Any:
        name = node.value.strip() if isinstance(node, ScalarNode) else ""
        if not name:
            return self._tag_error(node, "!env needs the name of an environment variable")
        value = self._ctx.environ.get(name)
        if value is None:
            return self._tag_error(node, f'environment variable "{name}" is not set')
        return value

    def construct_include(self, node: Any) -> Any:
        ctx = self._ctx
        rel = node.value.strip() if isinstance(node, ScalarNode) else ""
        if not rel:
            return self._tag_error(node, "!include needs a file name")
        target = (self._dir / rel).resolve()
        if not target.is_relative_to(ctx.root_dir):
            return self._tag_error(node, f'!include "{rel}" is outside the configuration folder')
        if target in ctx.stack:
            return self._tag_error(node, f'!include "{rel}" includes itself (cycle)')
        if len(ctx.stack) >= MAX_INCLUDE_DEPTH:
            return self._tag_error(node, f"!include nested deeper than {MAX_INCLUDE_DEPTH} files")
        if ctx.included >= MAX_INCLUDED_FILES:
            return self._tag_error(node, f"more than {MAX_INCLUDED_FILES} !include tags")
        if not target.is_file():
            return self._tag_error(node, f'!include "{rel}": no such file')
        ctx.included += 1
        shown = os.path.normpath(os.path.join(os.path.dirname(self._file), rel))
        try:
            tree = _parse_file(target, shown, ctx)
        except ConfigErrors as exc:
            return _Unresolved(tuple(exc.errors), False)
        if isinstance(tree, CommentedMap | CommentedSeq):
            ctx.sources[id(tree)] = shown
            ctx.keep.append(tree)
        return tree


class _Resolver(VersionedResolver):
    """YAML 1.2 implicit types (``yes``/``on`` are text, no sexagesimals), always.

    ruamel looks the version up again for every scalar, through attribute lookups that fail
    with our loaders; fixing it once makes loading about a third faster.
    """

    @property
    def processing_version(self) -> Any:
        return (1, 2)


_Constructor.add_constructor(_INT_TAG, _Constructor.construct_decimal_int)
_Constructor.add_constructor("!env", _Constructor.construct_env)
_Constructor.add_constructor("!include", _Constructor.construct_include)


class _PureLoader(Reader, Scanner, Parser, Composer, _Constructor, _Resolver):
    """Pure-Python reader, scanner and parser (used when libyaml is not available)."""

    def __init__(self, stream: str) -> None:
        self.comment_handling = None
        Reader.__init__(self, stream, loader=self)
        Scanner.__init__(self, loader=self)
        Parser.__init__(self, loader=self)
        Composer.__init__(self, loader=self)
        _Constructor.__init__(self, loader=self)
        _Resolver.__init__(self, loader=self)


_LOADERS: list[Any] = [_PureLoader]

if CParser is not None:

    class _FastLoader(CParser, _Constructor, _Resolver):  # type: ignore[misc]
        """libyaml reader, scanner, parser and composer with our round-trip constructor."""

        def __init__(self, stream: str) -> None:
            self.comment_handling = None
            CParser.__init__(self, stream)
            self._parser = self._composer = self
            _Constructor.__init__(self, loader=self)
            _Resolver.__init__(self, loadumper=self)

    _LOADERS.insert(0, _FastLoader)


def _read_text(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError(shown, 1, 1, "", f"cannot read file: {exc.strerror or exc}")]
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigErrors(
            [ConfigError(shown, 1, 1, "", f"file is larger than {MAX_FILE_BYTES} bytes")]
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise ConfigErrors(
            [ConfigError(shown, line, col, "", "file is not valid UTF-8 text")]
        ) from None


def _yaml_error(exc: YAMLError, shown: str) -> ConfigError:
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
        if "duplicate key" in problem:
            return ConfigError(shown, mark.line + 1, mark.column + 1, "", "duplicate key")
        return ConfigError(
            shown, mark.line + 1, mark.column + 1, "", f"YAML syntax error: {problem}{context}"
        )
    if isinstance(exc, ReaderError):
        return ConfigError(shown, 1, 1, "", f"YAML syntax error: {exc.reason}")
    return ConfigError(shown, 1, 1, "", f"YAML syntax error: {exc}")


def _parse_file(path: Path, shown: str, ctx: _LoadContext) -> Any:
    """Parse one file (the main one or an included one) into a ruamel round-trip tree."""
    text = _read_text(path, shown)
    loader = _LOADERS[0](text)
    loader._ctx = ctx
    loader._file = shown
    loader._dir = path.parent
    ctx.stack.append(path)
    try:
        return loader.get_single_data()
    except YAMLError as exc:
        raise ConfigErrors([_yaml_error(exc, shown)]) from None
    except RecursionError:
        raise ConfigErrors([ConfigError(shown, 1, 1, "", "YAML nested too deeply")]) from None
    finally:
        ctx.stack.pop()
        loader.dispose()


# --------------------------------------------------------------------------------------------
# Documents: the ruamel tree, its plain-Python value, and the way back to positions


@dataclass(frozen=True, slots=True, eq=False)
class YamlDocument:
    """A loaded file: the position-keeping tree, its plain value and problems found so far."""

    file: str
    """The file name as given to :func:`load_yaml`; errors print it unchanged."""
    root: Any
    """The ruamel round-trip tree (CommentedMap / CommentedSeq / scalars)."""
    data: Any
    """The same content as plain dicts, lists, str, int, float, bool and None."""
    errors: tuple[ConfigError, ...] = ()
    """Mistakes found while loading: duplicate keys, unknown tags, unset !env, bad !include."""
    sources: Mapping[int, str] = field(default_factory=dict)
    """Which file each included mapping or sequence (by ``id``) comes from."""
    unresolved: tuple[Loc, ...] = ()
    """Locations whose value could not be resolved (already reported in ``errors``)."""

    @classmethod
    def from_tree(
        cls, tree: Any, file: str, *, sources: Mapping[int, str] | None = None
    ) -> YamlDocument:
        """Wrap a tree (ruamel or plain Python) loaded elsewhere."""
        return _document(file, tree, {}, dict(sources or {}))

    def position(self, loc: Sequence[str | int], *, key: bool = False) -> tuple[str, int, int]:
        """File, line and column (1-based) of the value at ``loc``.

        With ``key`` the position of the mapping key itself. Where ``loc`` leaves the tree (a
        missing key), the position of the deepest mapping or sequence reached.
        """
        file, line, col, _found = self._walk(loc, key)
        return file, line, col

    def error_at(self, loc: Sequence[str | int], message: str, *, key: bool = False) -> ConfigError:
        """A :class:`ConfigError` at ``loc`` (for checks made after validation)."""
        file, line, col = self.position(loc, key=key)
        return ConfigError(file, line, col, format_path(loc), message)

    def _walk(self, loc: Sequence[str | int], want_key: bool) -> tuple[str, int, int, bool]:
        """Position for ``loc`` and whether the whole of ``loc`` was found in the tree."""
        node = self.root
        file = self.sources.get(id(node), self.file)
        line, col = _start(node)
        last = len(loc) - 1
        for i, seg in enumerate(loc):
            lc = getattr(node, "lc", None)
            if isinstance(node, Mapping) and _has_key(node, seg):
                pos = _lc_pos(lc, "key" if want_key and i == last else "value", seg)
                child = node[seg]
            elif isinstance(node, Sequence) and not isinstance(node, str):
                if not isinstance(seg, int) or not 0 <= seg < len(node):
                    return file, line, col, False
                pos = _lc_pos(lc, "item", seg)
                child = node[seg]
            else:
                return file, line, col, False
            if pos is not None:
                line, col = pos
            included = self.sources.get(id(child))
            if included is not None and not (want_key and i == last):
                file = included
                line, col = _start(child)
            node = child
        return file, line, col, True


def _has_key(node: Mapping[Any, Any], seg: Any) -> bool:
    try:
        return seg in node
    except TypeError:
        return False


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, lc.col + 1
    return 1, 1


def _lc_pos(lc: Any, kind: str, seg: Any) -> tuple[int, int] | None:
    if lc is None:
        return None
    try:
        if kind == "key":
            line, col = lc.key(seg)
        elif kind == "value":
            line, col = lc.value(seg)
        else:
            line, col = lc.item(seg)
    except (KeyError, TypeError, IndexError):
        return None
    return line + 1, col + 1


class _Converter:
    """Turns a ruamel tree into plain Python, collecting the problems it meets on the way."""

    def __init__(
        self,
        file: str,
        dupes: dict[int, tuple[Any, list[_Dupe]]],
        sources: Mapping[int, str],
    ) -> None:
        self.file = file
        self.dupes = dupes
        self.sources = sources
        self.count = 0
        self.active: set[int] = set()
        self.errors: list[ConfigError] = []
        self.pending: list[tuple[Loc, str, bool]] = []  # located later: loc, message, at key
        self.unresolved: list[Loc] = []
        self.too_big = False

    def finish(self, doc: YamlDocument) -> list[ConfigError]:
        errors = list(self.errors)
        for loc, message, at_key in self.pending:
            errors.append(doc.error_at(loc, message, key=at_key))
        for _mapping, dupes in self.dupes.values():  # mappings not reached from the root
            for d in dupes:
                errors.append(ConfigError(d.file, d.line, d.col, "", _dupe_message(d)))
        return errors

    def _count(self, loc: Loc) -> bool:
        self.count += 1
        if self.count > MAX_VALUES:
            if not self.too_big:
                self.too_big = True
                message = f"document expands to more than {MAX_VALUES} values"
                self.pending.append((loc, message, False))
            return False
        return True

    def convert(self, node: Any, loc: Loc) -> Any:
        kind = type(node)
        if kind is str or kind is int or kind is bool or kind is float or node is None:
            self.count += 1
            return node
        if isinstance(node, Mapping):
            return self._mapping(node, loc)
        if isinstance(node, list | tuple | CommentedSeq):
            return self._sequence(node, loc)
        if isinstance(node, _Unresolved):
            self.unresolved.append(loc)
            for err in node.errors:
                if node.at_tag:
                    err = ConfigError(err.file, err.line, err.col, format_path(loc), err.message)
                self.errors.append(err)
            return _INVALID
        if isinstance(node, TaggedScalar):
            self.unresolved.append(loc)
            self.pending.append((loc, f'unknown tag "{node.tag.value}"', False))
            return _INVALID
        if isinstance(node, ScalarBoolean):
            return bool(node)
        if isinstance(node, bool | int | float | str):
            return _plain_scalar(node)
        if isinstance(node, CommentedSet | set | frozenset):
            return {self.convert(item, loc) for item in node}
        return node  # dates, datetimes, bytes

    def _check_container(self, node: Any, loc: Loc) -> bool:
        if not self._count(loc):
            return False
        if len(loc) > MAX_DEPTH:
            self.pending.append((loc, f"nested deeper than {MAX_DEPTH} levels", False))
            return False
        if id(node) in self.active:
            message = "an alias refers to the mapping or list containing it"
            self.pending.append((loc, message, False))
            return False
        tag = getattr(node, "tag", None)
        tag_value = getattr(tag, "value", None)
        if tag_value is not None and not tag_value.startswith("tag:yaml.org,2002:"):
            self.pending.append((loc, f'unknown tag "{tag_value}"', False))
            return False
        return True

    def _mapping(self, node: Mapping[Any, Any], loc: Loc) -> Any:
        if not self._check_container(node, loc):
            self.unresolved.append(loc)
            return _INVALID
        entry = self.dupes.pop(id(node), None)
        if entry is not None:
            for d in entry[1]:
                key_path = format_path((*loc, d.key)) if isinstance(d.key, str | int) else ""
                self.errors.append(ConfigError(d.file, d.line, d.col, key_path, _dupe_message(d)))
        self.active.add(id(node))
        out: dict[Any, Any] = {}
        for key, value in node.items():
            if isinstance(key, _Unresolved | TaggedScalar):
                self.convert(key, loc)
                continue
            plain_key = _plain_key(key)
            if plain_key is None and key is not None:
                self.pending.append((loc, "mapping keys must be simple values", False))
                continue
            out[plain_key] = self.convert(value, (*loc, plain_key))
        self.active.discard(id(node))
        return out

    def _sequence(self, node: Sequence[Any], loc: Loc) -> Any:
        if not self._check_container(node, loc):
            self.unresolved.append(loc)
            return _INVALID
        self.active.add(id(node))
        out = [self.convert(item, (*loc, i)) for i, item in enumerate(node)]
        self.active.discard(id(node))
        return out


def _plain_scalar(node: Any) -> Any:
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


def _plain_key(key: Any) -> Any:
    if key is None or isinstance(key, str | int | float | bool | date):
        return _plain_scalar(key) if isinstance(key, str | int | float | bool) else key
    return None


def _dupe_message(d: _Dupe) -> str:
    first = f" (first defined on line {d.first_line})" if d.first_line is not None else ""
    return f'duplicate key "{d.key}"{first}'


def load_yaml(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> YamlDocument:
    """Load one YAML file (and what it includes) keeping positions.

    ``environ`` (default ``os.environ``) resolves ``!env``. Raises :class:`ConfigErrors` when
    the file cannot be read or is not well-formed YAML; other mistakes (duplicate keys, unset
    variables, bad includes, unknown tags) are kept in :attr:`YamlDocument.errors` so that
    :func:`validate` reports them together with the schema's findings.
    """
    shown = os.fspath(path)
    real = Path(shown).resolve()
    ctx = _LoadContext(root_dir=real.parent, environ=os.environ if environ is None else environ)
    tree = _parse_file(real, shown, ctx)
    return _document(shown, tree, ctx.dupes, ctx.sources)


def _document(
    file: str, tree: Any, dupes: dict[int, tuple[Any, list[_Dupe]]], sources: dict[int, str]
) -> YamlDocument:
    conv = _Converter(file, dupes, sources)
    data = conv.convert(tree, ())
    draft = YamlDocument(file, tree, data, (), sources, tuple(conv.unresolved))
    errors = conv.finish(draft)  # positions of some problems need the finished document
    return YamlDocument(file, tree, data, tuple(errors), sources, tuple(conv.unresolved))


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
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(seg) if isinstance(seg, str) else None
            if info is None:
                return None
            tp = info.annotation
            continue
        origin = get_origin(tp)
        args = get_args(tp)
        if origin in (list, set, frozenset, Sequence) and args:
            tp = args[0]
        elif origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                tp = args[0]
            elif isinstance(seg, int) and 0 <= seg < len(args):
                tp = args[seg]
            else:
                return None
        elif origin in (dict, Mapping) and len(args) == 2:
            tp = args[1]
        else:
            return None
    return _unwrap(tp)


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
    fields = [
        name for name in parent.model_fields if not (isinstance(present, dict) and name in present)
    ]
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
        if doc.unresolved and _under(loc, doc.unresolved):
            continue  # already reported by the loader
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
        else YamlDocument.from_tree(data, file if file is not None else "<data>")
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
