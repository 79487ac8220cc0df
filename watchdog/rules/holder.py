"""The rules in force, and their reload on SIGHUP.

The watch loop and the Slack commands read :attr:`RulesHolder.current` whenever they need
rules; a reload swaps in a new file only when it parses cleanly and does not quietly stop
the watch, so a typo in a hot-edited file — or a file emptied by a botched deploy — is
reported (at error, ``FILE:LINE`` or one clear line) and the old rules stay in force.

SIGHUP calls :meth:`RulesHolder.reload_soon`: the file is read and parsed on a worker
thread (10,000 rules take seconds), so slash commands are acked meanwhile; signals that
arrive while a reload runs coalesce into one more reload after it, and a file whose
bytes are the ones read last time is not parsed again — a burst of 100 SIGHUPs parses
the file once or twice, and re-plans once.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import structlog

from watchdog.rules.load import load_ruleset, parse_bytes, read_rules
from watchdog.rules.problems import Problem, RulesFileError
from watchdog.rules.ruleset import RuleSet

log = structlog.get_logger(__name__)


class RulesHolder:
    def __init__(self, rules: RuleSet, path: Path | None = None) -> None:
        self.current = rules
        self.path = path if path is not None else rules.path
        #: reloads attempted (adopted or refused) since start
        self.reloads = 0
        self._running: asyncio.Task[None] | None = None
        self._again = False
        self._digest: str | None = None  # of the bytes read last (adopted or refused)

    @classmethod
    def from_file(cls, path: Path) -> RulesHolder:
        """Load ``path``; :class:`RulesFileError` when it is broken."""
        raw = read_rules(path)
        holder = cls(parse_bytes(raw, path), path)
        holder._digest = hashlib.sha256(raw).hexdigest()
        return holder

    def reload(self) -> bool:
        """Re-read the file now, on this thread; keep the old rules (and say why) when
        the new file is broken or would stop the watch."""
        try:
            fresh = load_ruleset(self.path)
        except RulesFileError as exc:
            return self._refuse(exc.problems)
        return self._adopt(fresh)

    async def reload_async(self) -> bool:
        """:meth:`reload` with the reading and parsing on a worker thread; a file that is
        byte for byte the one read last time is left at that (False)."""
        try:
            fresh = await asyncio.to_thread(self._read_if_changed)
        except RulesFileError as exc:
            return self._refuse(exc.problems)
        if fresh is None:
            log.info("rules.unchanged", path=str(self.path), rules=len(self.current.rules))
            return False
        return self._adopt(fresh)

    def _read_if_changed(self) -> RuleSet | None:
        raw = read_rules(self.path)
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self._digest:
            return None
        self._digest = digest  # refused or adopted, this content has had its answer
        return parse_bytes(raw, self.path)

    def reload_soon(self) -> None:
        """Reload in the background (the SIGHUP handler). While a reload runs, further
        calls only ask for one more after it, which then reads the newest file."""
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.get_running_loop().create_task(self._reloads(), name="reload")

    async def _reloads(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload_async()
            except Exception:  # a bug must not end reloading for the rest of the run
                log.exception("rules.reload_crashed", path=str(self.path))
            if not self._again:
                return

    async def settled(self) -> None:
        """Wait until no reload is running or asked for (tests, benchmarks)."""
        while self._running is not None and not self._running.done():
            await asyncio.shield(self._running)

    def _adopt(self, fresh: RuleSet) -> bool:
        blinding = losses(self.current, fresh)
        if blinding:
            return self._refuse([Problem(str(self.path), 1, reason) for reason in blinding])
        self.reloads += 1
        self.current = fresh
        log.info("rules.reloaded", path=str(self.path), rules=len(fresh.rules))
        return True

    def _refuse(self, problems: list[Problem]) -> bool:
        self.reloads += 1
        log.error(
            "rules.reload_refused",
            path=str(self.path),
            problems=[str(p) for p in problems],
            kept=f"the running rules stay in force ({len(self.current.rules)} rules)",
        )
        return False


def losses(running: RuleSet, fresh: RuleSet) -> list[str]:
    """What ``fresh`` would silently stop, compared with the rules ``running``: its rules,
    its alert channel, its operators. A file can drop them on purpose only by a restart;
    on a reload, an emptied or truncated file is far likelier."""
    reasons = []
    if running.rules and not fresh.rules:
        reasons.append(
            f"the file has no [[rules]] (the running file has {len(running.rules)}): "
            "reloading it would stop every alert"
        )
    if running.slack.channel and not fresh.slack.channel:
        reasons.append(
            "the file has no [slack] channel (the running file has one): alerts would "
            "have nowhere to go"
        )
    if running.slack.operators and not fresh.slack.operators:
        reasons.append(
            "the file has no [slack] operators (the running file has "
            f"{len(running.slack.operators)}): nobody could act on a job from Slack"
        )
    return reasons
