"""JSON Schema (draft 2020-12) of an authored file language, made from its shapes.

The shapes are the ones the parser checks files with (nurture.core.shapes), so the
schema an editor uses and `nurture validate` agree on every key, type and value.
"""

from __future__ import annotations

import json
from typing import Any

from nurture.core.shapes import (
    Anything,
    Boolean,
    Either,
    Integer,
    Items,
    Keys,
    Language,
    Node,
    Nothing,
    Number,
    Ref,
    Text,
    Texts,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# A text is read as written: `template: 2026` or `name: yes` are texts to the parser.
_SCALAR = ["string", "number", "boolean"]


def json_schema(language: Language) -> dict[str, Any]:
    """The whole schema of one language, root and definitions."""
    # No $id: the files are used from disk (docs/schemas/), where they are found by path.
    schema: dict[str, Any] = {"$schema": DRAFT}
    schema.update(_node(language.root))
    schema.update(title=language.title, description=language.description)
    if language.definitions:
        schema["$defs"] = {name: _node(node) for name, node in language.definitions.items()}
    return schema


def dumps(schema: dict[str, Any]) -> str:
    """The published form: sorted nowhere (keys stay in the documented order), indented."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description} if description else schema


def _node(node: Node) -> dict[str, Any]:
    match node:
        case Text():
            return _text(node)
        case Integer():
            found: dict[str, Any] = {"type": "integer"}
            if node.minimum is not None:
                found["minimum"] = node.minimum
            return _described(found, node.description or node.what)
        case Number():
            number: dict[str, Any] = {"type": "number"}
            if node.minimum is not None:
                number["minimum"] = node.minimum
            if node.below is not None:
                number["exclusiveMaximum"] = node.below
            # Read as the text written (as floats are), the parser checks its bounds.
            written = {"type": "string", "pattern": r"^[0-9]*\.?[0-9]+$"}
            return _described({"anyOf": [number, written]}, node.description or node.what)
        case Boolean():
            return _described({"type": "boolean"}, node.description)
        case Texts():
            item = _text(node.item)
            one_or_many = {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}
            return _described(one_or_many, node.description or node.what)
        case Items():
            found = {"type": "array", "items": _node(node.item)}
            if node.min_items:
                found["minItems"] = node.min_items
            return _described(found, node.description)
        case Keys():
            return _keys(node)
        case Either():
            return _described({"anyOf": [_node(o) for o in node.options]}, node.description)
        case Ref():
            return {"$ref": f"#/$defs/{node.name}"}
        case Anything():
            return _described({}, node.description)
        case Nothing():
            return _described({"type": "null"}, node.description)
    raise TypeError(node)  # pragma: no cover


def _text(node: Text) -> dict[str, Any]:
    found: dict[str, Any]
    if node.enum:
        found = {"enum": list(node.enum)}
    elif node.pattern is not None:
        # The pattern applies to texts; a number or a word such as `yes` is read as
        # its text by the parser, which checks it there.
        found = {"type": _SCALAR, "pattern": f"^(?:{node.pattern})$"}
    else:
        found = {"type": _SCALAR, "minLength": 1}
    return _described(found, node.description or node.what)


def _keys(node: Keys) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "object"}
    if node.values is not None:
        found["additionalProperties"] = _node(node.values)
    else:
        found["properties"] = {key: _node(value) for key, value in node.keys.items()}
        found["additionalProperties"] = False
    if node.required:
        found["required"] = list(node.required)
    if node.exactly_one:
        found["minProperties"] = 1
        found["maxProperties"] = 1
    if node.one_of:
        found["oneOf"] = [{"required": [key]} for key in node.one_of]
    return _described(found, node.description or node.what)


def languages() -> dict[str, Language]:
    """Every published language by name."""
    from nurture.core import (
        broadcast_language,
        qualification_parser,
        routing_parser,
        scenario,
        scoring_language,
        sequence_language,
    )

    found = (
        sequence_language.LANGUAGE,
        scoring_language.LANGUAGE,
        routing_parser.LANGUAGE,
        qualification_parser.LANGUAGE,
        scenario.LANGUAGE,
        broadcast_language.LANGUAGE,
    )
    return {language.name: language for language in found}
