"""A whole, valid rules file: its tables and its rules (:class:`RuleSet`).

:func:`watchdog.rules.load.load_ruleset` makes one from a file; everything that reads the
rules in force (the watch loop, the commands, the notifier) gets a :class:`RuleSet`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.rules.maintenance import MaintenanceWindow
from watchdog.rules.model import Rule
from watchdog.rules.tables import (
    DigestSettings,
    Frozen,
    HaSettings,
    ProjectSpec,
    SlackSettings,
    WatchSettings,
)


class Document(Frozen):
    """The file's top level, before it is tied to a path."""

    watch: WatchSettings = Field(default_factory=WatchSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    digest: DigestSettings | None = None
    projects: tuple[ProjectSpec, ...] = ()
    rules: tuple[Rule, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()


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
    def project_names(self) -> tuple[str, ...]:
        """The projects watched: the ``[[projects]]`` names, or ``default`` alone."""
        return tuple(p.name for p in self.projects) or (DEFAULT_PROJECT,)

    def project(self, name: str) -> ProjectSpec | None:
        return next((p for p in self.projects if p.name == name), None)

    def rules_for(self, project: str) -> tuple[Rule, ...]:
        """The rules that look at ``project``'s jobs (their ``match.project`` allows it)."""
        return tuple(r for r in self.rules if not r.match.project or project in r.match.project)

    @property
    def metric_rules(self) -> tuple[Rule, ...]:
        """Rules that need metric samples (so jobs they match need a metrics fetch)."""
        return tuple(rule for rule in self.rules if rule.metrics)

    @property
    def max_window(self) -> float:
        """The longest look-back any rule needs, in seconds (0 when none needs history)."""
        return max((rule.window for rule in self.rules), default=0.0)
