"""The daily digest: posted once a day, by one replica, exactly once.

At ``[digest] at`` in its ``timezone`` the replica holding the coordinator's lease (the
first project's, :attr:`watchdog.watch.fleet.Fleet.coordinator`) sums up the last 24 hours
of the incident history (:func:`watchdog.domain.digest.summarize`) and enqueues the post
with :meth:`watchdog.store.Store.enqueue_once` under that lease, keyed by the local day:
the item and the day's mark are one fenced transaction, so neither a crash between the
two, nor a restart, nor a second replica (which cannot hold the lease, or finds the day
marked) posts a day twice. A bot that starts after the hour posts the day's digest at
once; one that was down a whole day does not catch up on the day it missed. The fleet
asks after each lease round (:meth:`DailyDigest.check`); the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from watchdog.domain.digest import summarize
from watchdog.domain.outgoing import DigestPost
from watchdog.rules.holder import RulesHolder
from watchdog.store import Fence, Store

log = structlog.get_logger(__name__)

#: What a daily digest covers.
DAY = 86_400.0


class DailyDigest:
    def __init__(
        self, store: Store, rules: RulesHolder, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._rules = rules
        self._clock = clock
        self._done: str | None = None  # the last day known posted (here or elsewhere)

    def due(self, now: float) -> str | None:
        """The key of the day whose digest is due at ``now`` (None: none is, or there is
        no ``[digest]``): ``digest/2026-11-28`` once the local time reaches ``at``."""
        settings = self._rules.current.digest
        if settings is None:
            return None
        local = datetime.fromtimestamp(now, ZoneInfo(settings.timezone))
        if local.strftime("%H:%M") < settings.at:
            return None
        return f"digest/{local.date().isoformat()}"

    async def check(self, fences: Mapping[str, Fence]) -> bool:
        """Enqueue the day's digest when it is due, this replica coordinates (``fences``
        has the coordinator's, under ``""``) and no one has yet; True when it did now."""
        now = self._clock()
        key, fence = self.due(now), fences.get("")
        settings = self._rules.current.digest
        if key is None or fence is None or key == self._done or settings is None:
            return False
        since = now - DAY
        digest = summarize(await self._store.list_incidents(since), since, now)
        post = DigestPost(digest, settings.channel, settings.timezone)
        posted = await self._store.enqueue_once(key, [post], project="", fence=fence, now=now)
        self._done = key
        if posted:
            log.info("digest.enqueued", day=key, incidents=digest.incidents)
        return posted
