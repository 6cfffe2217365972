"""Validation errors in our own words (pure).

pydantic's messages ("Input should be a valid list") name its types, not the config's; a
person editing YAML needs to hear what to write instead. `FieldProblem` lets a validator
that sees several fields at once (a target's probes, the list of targets) place each
problem on the line where it is, not on the section's first line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["FieldProblem", "explain"]


class FieldProblem(ValueError):
    """Raised by a validator: `problems` are (path below the validated model, message)."""

    def __init__(self, problems: list[tuple[tuple[Any, ...], str]]) -> None:
        super().__init__("; ".join(msg for _, msg in problems))
        self.problems = problems


def _choices(expected: str) -> str:
    # pydantic renders a Literal's choices as "'a', 'b' or 'c'".
    return expected.replace("'", "")


def _bound(err: Mapping[str, Any]) -> str | None:
    ctx = err.get("ctx") or {}
    for key, words in (
        ("gt", "greater than"),
        ("ge", "at least"),
        ("lt", "less than"),
        ("le", "at most"),
    ):
        if key in ctx:
            return f"expected a number {words} {ctx[key]}"
    return None


_BY_TYPE = {
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "string_type": "expected text (quote it if YAML reads it as something else)",
    "list_type": "expected a list: [a, b] or one `- item` per line",
    "dict_type": "expected a mapping: one `key: value` per line",
    "model_type": "expected a mapping: one `key: value` per line",
    "model_attributes_type": "expected a mapping: one `key: value` per line",
    "extra_forbidden": "unknown key (check the spelling; unknown keys are rejected)",
    "missing": "required field is missing",
}


def _message(err: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    field = loc[-1] if loc else None
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    if kind in ("literal_error", "enum"):
        return f"expected one of {_choices(str(ctx.get('expected', '')))}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _bound(err) or "number out of range"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"expected at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} items"
    if kind == "string_too_short":
        return "expected a non-empty value"
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch" and field in ("name", "locations", "location"):
        return "expected lowercase letters, digits and '-' (like deepseek-direct)"
    if kind == "string_pattern_mismatch" and field == "base_url":
        return "expected an http:// or https:// URL"
    if kind == "string_pattern_mismatch" and isinstance(field, int):
        return "expected lowercase letters, digits and '-' (like east or us-west-2)"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    # Whatever pydantic adds later still reads as an expectation, not as its own jargon.
    if msg.startswith("Input should be "):
        return "expected " + msg[len("Input should be ") :]
    return msg


def explain(errors: Iterable[Mapping[str, Any]]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path into the config, message in our words) for each pydantic error."""
    for err in errors:
        loc = tuple(err["loc"])
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, FieldProblem):
            for sub, msg in problem.problems:
                yield (*loc, *sub), msg
            continue
        yield loc, _message(err, loc)
