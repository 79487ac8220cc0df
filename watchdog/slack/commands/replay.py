"""Signed Slack requests are served once: a captured request posted again changes nothing.

Slack's v0 signature covers the body and a timestamp but carries no nonce, so a request
copied off the wire (or out of a proxy's log) verifies again and again for as long as
its timestamp is fresh — five minutes. A replayed ``pause`` would pause three times, a
replayed Cancel click cancel twice. Every accepted request is therefore remembered by its
signature until its timestamp goes stale, in the store (:meth:`Store.claim_once`), so
every replica behind the load balancer knows it; a request seen before is answered with
an empty 200 and counted, never served.

The key stored is a digest of the signature, not the signature itself (which would let
whoever reads the database replay the request while it is fresh). When the store cannot
answer, this replica's own memory of the requests it served still refuses replays sent
to it, and the outage is logged once: commands keep working through a database outage.
Socket Mode is not signed (Slack's own authenticated websocket) and is not checked here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable

import structlog

from watchdog.slack.commands.verify import MAX_SKEW, Signed
from watchdog.store import StoreError

log = structlog.get_logger(__name__)

#: Claimed keys are namespaced: the store's claims are shared with other uses.
KEY_PREFIX = "slack-request:"


class ReplayGuard:
    """Tells whether a verified request is seen for the first time."""

    def __init__(
        self,
        claim: Callable[[str, float], Awaitable[bool]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._claim = claim  # Store.claim_once
        self._clock = clock  # the verifier's clock: request timestamps are on it
        self._served: dict[str, float] = {}  # this replica's own memory: key -> until
        self._store_down = False

    async def first_time(self, signed: Signed) -> bool:
        """True for a request not served before (and remember it); False for a replay."""
        key = KEY_PREFIX + hashlib.sha256(signed.signature.encode()).hexdigest()
        # A request is accepted while its timestamp is within MAX_SKEW of our clock
        # either way: remember it until the last moment it could verify.
        until = signed.timestamp + MAX_SKEW + 1
        now = self._clock()
        for old in [k for k, end in self._served.items() if end <= now]:
            del self._served[old]
        if key in self._served:
            return False
        self._served[key] = until
        try:
            first = await self._claim(key, until)
        except StoreError as exc:
            if not self._store_down:
                log.error(
                    "slack.replay_check_degraded",
                    error=str(exc),
                    effect="replays are refused only when sent to the replica that served "
                    "the request, until the state store answers again",
                )
            self._store_down = True
            return True
        if self._store_down:
            log.info("slack.replay_check_restored")
            self._store_down = False
        return first
