"""Read an authored YAML file into located values, and check their shape.

Only PyYAML's safe composer runs on the text; the values are built here from its
nodes so that every mapping, list and scalar keeps the line it was written on,
and so that duplicate keys (which PyYAML silently lets the last one win) become
problems. `Reader` then checks types and keys and collects every problem, so a
file reports all its mistakes at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from nurture.core.problems import Problem
from nurture.core.shapes import Boolean, Integer, Keys, Number, Text, Texts

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_SAFE_SCALARS = frozenset(
    {_STR, _INT, _BOOL, _NULL, "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
)

_DECIMAL = re.compile(r"[0-9]*\.?[0-9]+")


@dataclass(frozen=True)
class LocatedScalar:
    """A scalar as written (`text`) and its value: an int, a bool, None, else the text."""

    value: object
    text: str
    line: int
    # A stand-in for a value already reported as unreadable: no second message.
    reported: bool = False

    @property
    def is_null(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class LocatedList:
    items: tuple[Located, ...]
    line: int


@dataclass(frozen=True)
class LocatedMapping:
    """A mapping with string keys, in file order; `key_lines` says where each key is."""

    entries: Mapping[str, Located]
    key_lines: Mapping[str, int]
    line: int

    def get(self, key: str) -> Located | None:
        return self.entries.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


Located = LocatedScalar | LocatedList | LocatedMapping


def load(text: str, path: str) -> tuple[Located | None, list[Problem]]:
    """The located value of a one-document YAML text (None if empty or unreadable)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = exc.problem or exc.context or "unreadable YAML"
        return None, [Problem(path, line, f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(path, 1, f"YAML syntax error: {exc}")]
    if node is None:
        return None, []
    builder = _Builder(path)
    return builder.build(node), builder.problems


class _Builder:
    """Builds located values from nodes; anchors are built once and shared."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        # Keyed by node identity: an alias is the same node object, so memoising
        # keeps "billion laughs" files linear and lets us spot recursive anchors.
        self._built: dict[int, Located] = {}
        self._building: set[int] = set()
        self._constructor = SafeConstructor()

    def build(self, node: yaml.Node) -> Located:
        line = node.start_mark.line + 1
        key = id(node)
        if key in self._built:
            return self._built[key]
        if key in self._building:
            self.problems.append(Problem(self.path, line, "an alias refers to itself"))
            return LocatedScalar(None, "", line, reported=True)
        self._building.add(key)
        try:
            value = self._build(node, line)
        finally:
            self._building.discard(key)
        self._built[key] = value
        return value

    def _build(self, node: yaml.Node, line: int) -> Located:
        if node.tag not in (_SEQ, _MAP, *_SAFE_SCALARS):
            # Built from the nodes, such a tag could never run code; it is still
            # not part of the language, and saying so beats ignoring it.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self.problems.append(Problem(self.path, line, f"unsupported YAML tag {tag}"))
            return LocatedScalar(None, "", line, reported=True)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, line)
        if isinstance(node, yaml.SequenceNode):
            return LocatedList(tuple(self.build(item) for item in node.value), line)
        assert isinstance(node, yaml.MappingNode)
        entries: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SAFE_SCALARS:
                message = "a key must be a plain text, not a list or a mapping"
                self.problems.append(Problem(self.path, key_line, message))
                continue
            name = str(key_node.value)
            if name in entries:
                self.problems.append(
                    Problem(
                        self.path,
                        key_line,
                        f'duplicate key "{name}" (first given at line {key_lines[name]})',
                    )
                )
                continue
            entries[name] = self.build(value_node)
            key_lines[name] = key_line
        return LocatedMapping(MappingProxyType(entries), MappingProxyType(key_lines), line)

    def _scalar(self, node: yaml.ScalarNode, line: int) -> LocatedScalar:
        text = str(node.value)
        if node.tag not in (_INT, _BOOL, _NULL):
            # Floats and dates are read as the text written: the language has
            # neither, and "2026-13-01" should not fail as an impossible date.
            return LocatedScalar(text, text, line)
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            self.problems.append(Problem(self.path, line, f"unreadable value {text!r}: {exc}"))
            return LocatedScalar(None, text, line, reported=True)
        return LocatedScalar(value, text, line)


def at(where: str, key: str | int) -> str:
    """The field path of a key or a (1-based) list position below `where`."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def shown(node: Located) -> str:
    """How a value is named in "got ..." messages."""
    if isinstance(node, LocatedMapping):
        return "a mapping"
    if isinstance(node, LocatedList):
        return "a list"
    if node.is_null:
        return "nothing"
    return json.dumps(node.text, ensure_ascii=False)


@dataclass
class Reader:
    """Checks located values against the expected shape, collecting every problem."""

    path: str
    problems: list[Problem] = field(default_factory=list)

    def problem(self, line: int, where: str, message: str) -> None:
        self.problems.append(Problem(self.path, line, f"{where}: {message}" if where else message))

    def expected(self, node: Located, where: str, what: str) -> None:
        if isinstance(node, LocatedScalar) and node.reported:
            return
        self.problem(node.line, where, f"expected {what}, got {shown(node)}")

    def mapping(
        self,
        node: Located | None,
        where: str,
        allowed: tuple[str, ...] | None,
        required: tuple[str, ...] = (),
        what: str = "a mapping",
    ) -> LocatedMapping | None:
        """The mapping at `where`, after reporting unknown and missing keys.

        `allowed=None` accepts any key (custom fields, event properties).
        """
        if node is None:
            return None
        if not isinstance(node, LocatedMapping):
            self.expected(node, where, what)
            return None
        for key in node:
            if allowed is not None and key not in allowed:
                self.problem(
                    node.key_lines[key],
                    at(where, key),
                    f"unknown key; allowed keys here: {', '.join(allowed)}",
                )
        for key in required:
            if key not in node:
                self.problem(node.line, where, f'missing required key "{key}"')
        return node

    def one_of(
        self, node: Located | None, where: str, allowed: tuple[str, ...], what: str, noun: str
    ) -> tuple[str, Located, LocatedMapping] | None:
        """The single key of the mapping at `where` (a trigger kind, a condition), its
        value and the mapping; None after reporting anything else. `what` names the
        mapping ("a trigger"), `noun` its key ("trigger kind")."""
        names = ", ".join(allowed)
        found = self.mapping(node, where, allowed, what=f"{what}, one of {names}")
        if found is None:
            return None
        if len(found) != 1:
            self.problem(found.line, where, f"expected exactly one {noun}, one of {names}")
            return None
        name = next(iter(found))
        value = found.get(name)
        if name not in allowed or value is None:
            return None  # an unknown key: reported already
        return name, value, found

    def keyed(self, node: Located | None, where: str, shape: Keys) -> LocatedMapping | None:
        """The mapping at `where`, checked against its shape's allowed and required keys."""
        return self.mapping(node, where, shape.allowed, shape.required, shape.what)

    def field(self, found: LocatedMapping, shape: Keys, key: str, where: str) -> Any:
        """The value of `key` read as its shape says (None when absent or wrong, reported):
        a text, an int, a bool, or the located texts of a `Texts`."""
        node = found.get(key)
        spec = shape.keys[key]
        path = at(where, key)
        match spec:
            case Text():
                return self.text(node, path, spec)
            case Integer():
                number = self.integer(node, path, spec.what)
                if number is not None and spec.minimum is not None and number < spec.minimum:
                    assert node is not None
                    self.expected(node, path, spec.what)
                    return None
                return number
            case Number():
                return self.number(node, path, spec)
            case Boolean():
                return self.boolean(node, path)
            case Texts():
                return self.strings(node, path, spec.what)
        raise TypeError(f"{key}: read {type(spec).__name__} values in the parser")

    def text(self, node: Located | None, where: str, spec: Text) -> str | None:
        """A text that has the shape `spec`: its pattern, one of its values."""
        value = self.string(node, where, spec.what)
        if value is None or node is None:
            return None
        if spec.enum and value not in spec.enum:
            listed = spec.listed or f"expected one of {', '.join(spec.enum)}"
            self.problem(node.line, where, f'unknown {spec.noun} "{value}"; {listed}')
            return None
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            self.expected(node, where, spec.what)
            return None
        return value

    def scalar_text(self, node: Located | None, where: str, what: str) -> LocatedScalar | None:
        """A non-empty scalar, read as written (so `no`, `1.0` or `9:00` stay text)."""
        if node is None:
            return None
        if not isinstance(node, LocatedScalar) or node.is_null or not node.text.strip():
            self.expected(node, where, what)
            return None
        return node

    def string(self, node: Located | None, where: str, what: str = "a text") -> str | None:
        found = self.scalar_text(node, where, what)
        return found.text.strip() if found is not None else None

    def integer(self, node: Located | None, where: str, what: str = "a whole number") -> int | None:
        if node is None:
            return None
        # bool is an int in Python; `yes` is not a number to a marketer.
        if isinstance(node, LocatedScalar) and type(node.value) is int:
            return node.value
        self.expected(node, where, what)
        return None

    def number(self, node: Located | None, where: str, spec: Number) -> float | None:
        """A number within the shape's bounds (bool is no number to a marketer)."""
        if node is None:
            return None
        value: float | None = None
        if isinstance(node, LocatedScalar) and type(node.value) is int:
            value = float(node.value)
        elif isinstance(node, LocatedScalar) and _DECIMAL.fullmatch(node.text.strip()):
            value = float(node.text)  # floats stay text when read (see _scalar)
        if (
            value is None
            or (spec.minimum is not None and value < spec.minimum)
            or (spec.below is not None and value >= spec.below)
        ):
            self.expected(node, where, spec.what)
            return None
        return value

    def boolean(self, node: Located | None, where: str) -> bool | None:
        if node is None:
            return None
        if isinstance(node, LocatedScalar) and isinstance(node.value, bool):
            return node.value
        self.expected(node, where, "true or false")
        return None

    def strings(
        self, node: Located | None, where: str, what: str = "a text or a list of texts"
    ) -> list[LocatedScalar] | None:
        """One text or a non-empty list of texts, each kept with its line.

        An empty list is reported: it is nearly always a value left out by mistake,
        and leaving the key out already says "no restriction".
        """
        if node is None:
            return None
        if isinstance(node, LocatedScalar):
            found = self.scalar_text(node, where, what)
            return [found] if found is not None else None
        if isinstance(node, LocatedMapping):
            self.expected(node, where, what)
            return None
        if not node.items:
            self.problem(node.line, where, f"expected {what}, got an empty list")
            return None
        items: list[LocatedScalar] = []
        for index, item in enumerate(node.items, start=1):
            found = self.scalar_text(item, at(where, index), "a text")
            if found is not None:
                items.append(found)
        return items

    def items(self, node: Located | None, where: str, what: str = "a list") -> tuple[Located, ...]:
        """The items of the list at `where` (none when absent or not a list, reported)."""
        if node is None:
            return ()
        if not isinstance(node, LocatedList):
            self.expected(node, where, what)
            return ()
        return node.items

    def text_mapping(self, node: Located | None, where: str) -> dict[str, str] | None:
        """A mapping of names to single texts, such as an event's properties."""
        found = self.mapping(node, where, None, what="a mapping of names to texts")
        if found is None:
            return None
        values: dict[str, str] = {}
        for key, value in found.entries.items():
            text = self.string(value, at(where, key))
            if text is not None:
                values[key] = text
        return values


# An authored file larger than this is refused before it is read: parsed, a file of
# many megabytes takes gigabytes (an 11 MB sequence of 350,000 steps passed 2.5 GB).
MAX_FILE_BYTES = 1024 * 1024


def read_text(path: Path) -> tuple[str | None, Problem | None]:
    """An authored file's UTF-8 text, or the problem that prevents reading it."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, Problem(
                str(path),
                1,
                f"the file is {size:,} bytes, more than the {MAX_FILE_BYTES:,} an authored"
                " file may have: split it",
            )
        return path.read_bytes().decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, Problem(str(path), 1, f"the file is not UTF-8 text ({exc.reason})")
    except OSError as exc:
        return None, Problem(str(path), 1, f"cannot read the file: {exc.strerror}")
