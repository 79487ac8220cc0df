"""The rules in force, and their reload on SIGHUP.

The watch loop and the Slack commands read :attr:`RulesHolder.current` whenever they need
rules; :meth:`RulesHolder.reload` swaps in a new file only when it parses cleanly, so a
typo in a hot-edited file is reported and the old rules stay in force.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from watchdog.rules.load import load_ruleset
from watchdog.rules.problems import RulesFileError
from watchdog.rules.ruleset import RuleSet

log = structlog.get_logger(__name__)


class RulesHolder:
    def __init__(self, rules: RuleSet, path: Path | None = None) -> None:
        self.current = rules
        self.path = path if path is not None else rules.path

    @classmethod
    def from_file(cls, path: Path) -> RulesHolder:
        """Load ``path``; :class:`RulesFileError` when it is broken."""
        return cls(load_ruleset(path), path)

    def reload(self) -> bool:
        """Re-read the file; keep the old rules (and say why) when the new file is broken."""
        try:
            fresh = load_ruleset(self.path)
        except RulesFileError as exc:
            log.error(
                "rules.reload_refused", path=str(self.path), problems=[str(p) for p in exc.problems]
            )
            return False
        self.current = fresh
        log.info("rules.reloaded", path=str(self.path), rules=len(fresh.rules))
        return True
