"""A whole, valid rules file: its tables and its rules (:class:`RuleSet`).

:func:`watchdog.rules.load.load_ruleset` makes one from a file; everything that reads the
rules in force (the watch loop, the commands, the notifier) gets a :class:`RuleSet`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from watchdog.rules.model import Rule
from watchdog.rules.tables import Frozen, SlackSettings, WatchSettings


class Document(Frozen):
    """The file's top level, before it is tied to a path."""

    watch: WatchSettings = Field(default_factory=WatchSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    rules: tuple[Rule, ...] = ()


class RuleSet(Document):
    """A whole, valid rules file."""

    path: Path = Path("<memory>")

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return self

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, if there is one."""
        return next((rule for rule in self.rules if rule.name == name), None)

    @property
    def metric_rules(self) -> tuple[Rule, ...]:
        """Rules that need metric samples (so jobs they match need a metrics fetch)."""
        return tuple(rule for rule in self.rules if rule.metrics)

    @property
    def max_window(self) -> float:
        """The longest look-back any rule needs, in seconds (0 when none needs history)."""
        return max((rule.window for rule in self.rules), default=0.0)
