"""The shape of authored files, written once: which keys a mapping allows, which it
requires, and what type and values each key takes.

The parsers check files against these shapes (`Reader.keyed`, `Reader.field` in
nurture.core.yamlsource) and `nurture schema` turns the same shapes into JSON Schema
(nurture.core.schema), so an editor and `nurture validate` cannot disagree on a key.
What a shape cannot say (a step id that must exist, a duration that must parse, a
cycle) stays in the parser; the schema is never stricter than the parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Text:
    """A non-empty scalar read as written; `pattern` must match it whole, `enum` lists
    the only values allowed (`noun` names one of them in messages)."""

    what: str = "a text"
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    noun: str = "value"
    listed: str = ""  # how messages list `enum` (default: "expected one of ...")
    description: str = ""


@dataclass(frozen=True)
class Integer:
    what: str = "a whole number"
    minimum: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Number:
    """A number, whole or not, from `minimum` (included) to `below` (excluded)."""

    what: str = "a number"
    minimum: float | None = None
    below: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Boolean:
    what: str = "true or false"
    description: str = ""


@dataclass(frozen=True)
class Texts:
    """One text, or a non-empty list of texts."""

    item: Text = Text()
    what: str = "a text or a list of texts"
    description: str = ""


@dataclass(frozen=True)
class Items:
    """A list whose every item has the shape `item`."""

    item: Node
    what: str = "a list"
    min_items: int = 0
    description: str = ""


@dataclass(frozen=True)
class Keys:
    """A mapping: the keys it allows (and their shapes), the keys it requires.

    `values` instead of `keys`: any key is allowed (custom fields, event properties),
    each value of that shape. `exactly_one`: one key of `keys`, no more (a trigger, a
    condition).
    """

    keys: Mapping[str, Node] = field(default_factory=lambda: MappingProxyType({}))
    required: tuple[str, ...] = ()
    what: str = "a mapping"
    values: Node | None = None
    exactly_one: bool = False
    one_of: tuple[str, ...] = ()  # exactly one of these keys must be given
    description: str = ""

    @property
    def allowed(self) -> tuple[str, ...] | None:
        """The allowed keys, in the order they are documented (None: any key)."""
        return None if self.values is not None else tuple(self.keys)

    def nested(self, key: str) -> Keys:
        """The mapping shape of `key` (its value must be a mapping)."""
        shape = self.keys[key]
        if not isinstance(shape, Keys):
            raise TypeError(f"{key} is not a mapping here")
        return shape


@dataclass(frozen=True)
class Either:
    """One of several shapes (a bare `- lead_created` or a mapping, a duration or a
    mapping...)."""

    options: tuple[Node, ...]
    description: str = ""


@dataclass(frozen=True)
class Ref:
    """A shape named in the language's definitions (shared, or recursive)."""

    name: str


@dataclass(frozen=True)
class Anything:
    description: str = ""


@dataclass(frozen=True)
class Nothing:
    """A key written with no value (`lead_created:`)."""

    description: str = ""


Node = Text | Integer | Number | Boolean | Texts | Items | Keys | Either | Ref | Anything | Nothing


@dataclass(frozen=True)
class Language:
    """An authored file language: its root shape and its named shapes."""

    name: str
    title: str
    description: str
    root: Node
    definitions: Mapping[str, Node] = field(default_factory=lambda: MappingProxyType({}))
