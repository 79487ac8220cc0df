"""The rules file: TOML in, a validated :class:`~watchdog.rules.ruleset.RuleSet` out, every
problem as ``FILE:LINE``.

The file is parsed once at start-up, on every SIGHUP, and by ``polaris-watchdog check``. All
problems are reported at once, each at the line where the offending key, table or rule
starts (see :mod:`watchdog.rules.toml_lines`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.rules.durations import STRINGS_ONLY
from watchdog.rules.maintenance import unknown_names
from watchdog.rules.problems import (
    Problem,
    RulesFileError,
    describe_error,
    did_you_mean,
    duplicate_names,
    toml_problem,
)
from watchdog.rules.ruleset import Document, RuleSet
from watchdog.rules.toml_lines import TomlLines


def parse_ruleset(text: str, path: str | Path) -> RuleSet:
    """Parse and validate rules-file ``text``; ``path`` is used in problems and kept."""
    shown = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RulesFileError([toml_problem(shown, text, str(error))]) from None
    except RecursionError:
        raise RulesFileError([Problem(shown, 1, "invalid TOML: nested too deeply")]) from None
    lines = TomlLines(text)
    problems = duplicate_names(shown, data, lines)
    document: Document | None = None
    try:
        document = Document.model_validate(data, context={STRINGS_ONLY: True})
    except ValidationError as error:
        for detail in error.errors():
            problems.append(describe_error(shown, detail, data, lines, Document))
    if document is not None:
        problems += cross_checks(shown, document, lines)
    if problems or document is None:
        raise RulesFileError(sorted(set(problems), key=lambda p: (p.line, p.message)))
    parts = {name: getattr(document, name) for name in Document.model_fields}
    return RuleSet(**parts, path=Path(path))


def cross_checks(path: str, document: Document, lines: TomlLines) -> list[Problem]:
    """What no single table can check: names that must refer to something in the file."""
    problems: list[Problem] = []
    known = [p.name for p in document.projects] or [DEFAULT_PROJECT]
    for index, rule in enumerate(document.rules):
        for item, name in enumerate(rule.match.project):
            if name not in known:
                hint = did_you_mean(name, known) or f"projects: {', '.join(known)}"
                where = ("rules", index, "match", "project", item)
                message = f"rules[{index}] {rule.name!r}: unknown project {name!r} ({hint})"
                problems.append(Problem(path, lines.nearest_line(where), message))
    rules = [rule.name for rule in document.rules]
    for index, window in enumerate(document.maintenance):
        for key, problem in unknown_names(window, rules, known):
            message = f"maintenance[{index}] {window.name!r}: {problem}"
            at = lines.nearest_line(("maintenance", index, *key))
            problems.append(Problem(path, at, message))
    seen: dict[tuple[str, str], str] = {}
    for index, project in enumerate(document.projects):
        key = (project.url.lower(), project.id.lower())
        if key in seen:
            message = (
                f"projects[{index}] {project.name!r}: the same project as {seen[key]!r} "
                f"(url and id {project.id!r}); list each project once"
            )
            problems.append(Problem(path, lines.nearest_line(("projects", index, "id")), message))
        else:
            seen[key] = project.name
    return problems


def load_ruleset(path: str | Path) -> RuleSet:
    """Read and parse the rules file at ``path``; raises :class:`RulesFileError`."""
    return parse_bytes(read_rules(path), path)


def read_rules(path: str | Path) -> bytes:
    """The rules file's bytes; :class:`RulesFileError` when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        problem = Problem(str(path), 1, f"cannot read rules file: {reason}")
        raise RulesFileError([problem]) from None


def parse_bytes(raw: bytes, path: str | Path) -> RuleSet:
    """:func:`parse_ruleset` of a file's bytes, which must be UTF-8."""
    shown = str(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text: byte {raw[error.start]:#04x} cannot be decoded"
        raise RulesFileError([Problem(shown, line, message)]) from None
    return parse_ruleset(text, path)
