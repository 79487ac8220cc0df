"""Rules-file problems: what went wrong, where (``FILE:LINE``), in words a human acts on.

Pydantic reports errors by location (``("rules", 2, "rising", "increase")``) in its own
vocabulary ("Input should be greater than 0"). This module turns each one into a
:class:`Problem` that names the rule and the key, suggests the likely intended spelling,
and points at the line where the key, rule or table starts, using the raw parsed data to
tell real keys from pydantic's union tags and :class:`~watchdog.rules.toml_lines.TomlLines`
for the line numbers.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from watchdog.errors import InputError
from watchdog.rules.toml_lines import TomlLines

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rules file, at a 1-based line."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RulesFileError(InputError):
    """The rules file cannot be used; ``problems`` lists every reason, sorted by line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the closest choice to ``word``, if one is close enough."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"did you mean {by_lower[close[0]]!r}?" if close else None


def describe_error(
    path: str, error: ErrorDetails, data: dict[str, Any], lines: TomlLines, root: type[BaseModel]
) -> Problem:
    """Turn one pydantic error about ``data`` (validated as ``root``) into a Problem."""
    loc = tuple(error["loc"])
    found, node = _walk(loc, data)
    if error["type"].startswith("union_tag") and isinstance(node, dict) and "kind" in node:
        # The rule's table is known; its `kind` line is the one to fix.
        found = (*found, "kind")
    context, fields = _split(loc, data, error["type"])
    message = _message(error, loc, fields, root, node, bool(context))
    return Problem(path, lines.nearest_line(found), f"{context}: {message}" if context else message)


def _walk(loc: Loc, data: Any) -> tuple[Loc, Any]:
    """The part of ``loc`` that exists in the raw data, and the value it leads to.

    Components that are not keys of the data (a union's tag, a key that is missing)
    are skipped, so the result is always a path the line locator may know.
    """
    found: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        found.append(part)
    return tuple(found), node


#: Arrays of tables, whose elements are named in problems (``projects[1] 'prod'``).
ARRAYS = ("rules", "projects", "maintenance")
#: Plain tables (``[watch]``).
TABLES = ("watch", "slack", "ha", "digest")


def _split(loc: Loc, data: dict[str, Any], kind: str) -> tuple[str, list[str]]:
    """Split a location into who it is about (``rules[2] 'skips'``) and the key inside."""
    if len(loc) >= 2 and loc[0] in ARRAYS and isinstance(loc[1], int):
        items = data.get(str(loc[0]))
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        context = f"{loc[0]}[{loc[1]}]" + (f" {name!r}" if isinstance(name, str) else "")
        rest = loc[2:]
        if rest and isinstance(item, dict) and rest[0] == item.get("kind"):
            rest = rest[1:]  # the union tag, not a key the user wrote
        return context, [part for part in rest if isinstance(part, str)]
    if loc and loc[0] in TABLES and (len(loc) > 1 or kind == "value_error"):
        return f"[{loc[0]}]", [part for part in loc[1:] if isinstance(part, str)]
    return "", [part for part in loc if isinstance(part, str)]


def _models_at(root: type[BaseModel], loc: Loc) -> list[type[BaseModel]]:
    """The model classes that validate the value at ``loc`` (several inside a union)."""
    models = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        inner = [
            model
            for current in models
            for name, field in current.model_fields.items()
            if part in (name, field.alias)
            for model in _models_in(field.annotation)
        ]
        if not inner:
            inner = [model for model in models if part in _tags(model)]
        if not inner:
            return []
        models = inner
    return models


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("kind")
    return tuple(str(tag) for tag in get_args(field.annotation)) if field else ()


def _keys(models: list[type[BaseModel]]) -> list[str]:
    keys: dict[str, None] = {}
    for model in models:
        for name, field in model.model_fields.items():
            keys[field.alias or name] = None
            if field.alias and not name.endswith("_"):
                keys[name] = None  # e.g. execution_status, accepted beside executionStatus
    return list(keys)


_COMPARISONS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}
_TYPES = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
}


def _message(
    error: ErrorDetails,
    loc: Loc,
    fields: list[str],
    root: type[BaseModel],
    node: Any,
    in_context: bool,
) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = ".".join(fields)
    parent = ".".join(fields[:-1])
    inside = f" in {parent}" if parent else ""
    if kind == "extra_forbidden":
        return _unknown_key(loc, root, inside or ("" if in_context else " at the top level"))
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}{inside}"
    if kind.startswith("union_tag"):
        tags = [tag for model in _models_at(root, loc) for tag in _tags(model)]
        expected = f"expected one of: {', '.join(tags)}"
        given = node.get("kind") if isinstance(node, dict) else None
        if kind == "union_tag_not_found" or given is None:
            return f"missing required key 'kind' ({expected})"
        if not isinstance(given, str):
            return f"kind must be a string ({expected}; got {_got(given)})"
        guess = did_you_mean(given, tags)
        return f"unknown kind {given!r} ({expected})" + (f"; {guess}" if guess else "")
    if kind == "value_error":
        text = str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
        if not field:
            return text
        return f"{field} {text}" if text.startswith("must ") else f"{field}: {text}"
    subject = field or "the file"
    if kind in _COMPARISONS:
        bound, words = _COMPARISONS[kind]
        return f"{subject} {words} {_number(ctx.get(bound))}"
    if kind == "too_short":
        return f"{subject} must not be empty"
    if kind in ("tuple_type", "list_type") and fields == ["rules"] and not in_context:
        return (
            "rules must be an array of tables: start each rule with a [[rules]] header "
            f"(got {_got(error.get('input'))})"
        )
    if kind in _TYPES:
        return f"{subject} {_TYPES[kind]} (got {_got(error.get('input'))})"
    if kind == "literal_error":
        return f"{subject} must be one of {ctx.get('expected')} (got {_got(error.get('input'))})"
    return f"{subject}: {error['msg']}"


def _unknown_key(loc: Loc, root: type[BaseModel], where: str) -> str:
    key = str(loc[-1])
    models = _models_at(root, loc[:-1])
    known = _keys(models)
    if len(models) == 1 and len(loc) >= 2 and loc[-2] in _tags(models[0]):
        # A key of another rule kind (`increase` in a ratio rule) is a mix-up, not a typo.
        owners = [
            tag
            for model in _models_at(root, loc[:-2])
            if key in _keys([model])
            for tag in _tags(model)
        ]
        if owners:
            kinds = ", ".join(owners)
            return f"unknown key {key!r} for kind {loc[-2]!r} (it belongs to kind: {kinds})"
    hint = did_you_mean(key, known) or (f"expected one of: {', '.join(known)}" if known else None)
    return f"unknown key {key!r}{where}" + (f" ({hint})" if hint else "")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def toml_problem(path: str, text: str, message: str) -> Problem:
    position = _TOML_POSITION.search(message)
    if position:
        reason = message[: position.start()]
        return Problem(
            path, int(position.group(1)), f"invalid TOML: {reason} (column {position.group(2)})"
        )
    reason = message.replace("(at end of document)", "").strip()
    return Problem(path, max(1, text.count("\n") + 1), f"invalid TOML: {reason} (at end of file)")


def duplicate_names(path: str, data: dict[str, Any], lines: TomlLines) -> list[Problem]:
    """A name used twice in ``[[rules]]`` (or ``[[projects]]``, ``[[maintenance]]``), at the
    second use, saying where the first is."""
    problems = []
    for array in ARRAYS:
        items = data.get(array)
        if not isinstance(items, list):
            continue
        what = array.removesuffix("s") if array != "maintenance" else "maintenance window"
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            name = item["name"]
            line = lines.nearest_line((array, index, "name"))
            if name in first:
                message = (
                    f"{array}[{index}] {name!r}: duplicate {what} name {name!r} "
                    f"(first defined at line {first[name]})"
                )
                problems.append(Problem(path, line, message))
            else:
                first[name] = line
    return problems
