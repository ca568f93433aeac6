"""What a refused input is told: every problem with its field path and a plain message.

pydantic's errors become `FieldError`s here: `leads[3].email`, `fields.industry`,
`rep.phone`, `$` for the body itself. Messages written next to the format (a
`refusal`) pass through word for word; pydantic's own are said in our words, with the
limit they name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from nurture.core.formats import CONTROL, NO_CONTROL, REFUSED

# A refusal lists at most this many problems (a body may hold 60,000 bad keys).
MAX_LISTED = 100
# Keys longer than this are shortened in paths: a path repeats what was sent.
PATH_KEY_LENGTH = 60


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidInput(ValueError):
    """The input was refused; `errors` lists every problem with its field path."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def refused(error: ValidationError, model: type[BaseModel], prefix: str = "") -> InvalidInput:
    """`error`, raised by validating `model`, as every problem with its path."""
    problems = [
        FieldError(_path(detail["loc"], prefix), _message(detail, model, detail["loc"]))
        for detail in error.errors(include_url=False, include_input=False)
    ]
    if len(problems) > MAX_LISTED:
        more = len(problems) - MAX_LISTED
        problems = [*problems[:MAX_LISTED], FieldError("$", f"and {more:,} more problems")]
    return InvalidInput(problems)


def _path(loc: Sequence[int | str], prefix: str) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path and not path.endswith(".") else "") + _shown(part)
    return path.rstrip(".") or "$"


def _shown(key: str) -> str:
    """A key as a path shows it: control characters escaped, a long one shortened."""
    shown = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", key)
    if len(shown) > PATH_KEY_LENGTH:
        shown = f"{shown[:PATH_KEY_LENGTH]}… ({len(key):,} characters)"
    return shown


def _message(detail: ErrorDetails, model: type[BaseModel], loc: Sequence[int | str]) -> str:
    kind, ctx = detail["type"], detail.get("ctx", {})
    if kind == REFUSED:
        return str(ctx["message"])
    if kind == "extra_forbidden":
        allowed = _model_at(model, loc[:-1])
        names = sorted(allowed.model_fields) if allowed is not None else []
        return f"unknown field (allowed: {names})" if names else "unknown field"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NO_CONTROL:
        return "control characters are not allowed"
    if kind in ("too_long", "too_short"):
        bound = ctx["max_length" if kind == "too_long" else "min_length"]
        noun = "keys" if ctx.get("field_type") == "Dictionary" else "items"
        if kind == "too_short":
            return "must not be empty" if bound == 1 else f"at least {bound:,} {noun}"
        return f"at most {bound:,} {noun}"
    if kind == "greater_than_equal" and ctx.get("ge") == 0:
        return "must not be negative"
    template = _SAID.get(kind)
    if template is None:
        return re.sub(r"^Input should be ", "expected ", detail["msg"])
    return template.format(**ctx)


_SAID = {
    "missing": "required",
    "model_type": "expected a JSON object",
    "dict_type": "expected an object",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "string_too_short": "must not be empty",
    "string_too_long": "at most {max_length} characters",
    "string_pattern_mismatch": "expected text matching {pattern}",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that validates what sits at `loc` within `model`, if it is one."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: the list's item model is found below
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if _is_model(current) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if _is_model(annotation):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)
