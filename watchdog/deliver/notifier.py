"""The notifier interface: what the outbox dispatcher hands items to.

A notifier receives outbox records in enqueue order, claims each send unit just before
sending it (:meth:`Receipts.start`: the store marks the items in flight, so that after a
crash they are known to be maybe sent), and reports, one by one, which it delivered
(:meth:`Receipts.done`) or can never deliver (:meth:`Receipts.dead`). When the
destination is down it raises :class:`DeliveryUnavailable`: the dispatcher keeps the rest
queued and tries again later, so nothing is lost and nothing jumps the queue. Writes the
notifier makes itself (a storm's thread progress) go under :meth:`Receipts.fence`, and
right before each call that changes something at the destination it asks
:meth:`Receipts.confirm`, since no database fences the destination itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from watchdog.errors import WatchdogError
from watchdog.store import Fence, MessageRef, OutboxRecord


class Receipts(Protocol):
    async def start(self, record_ids: Sequence[int]) -> list[int]:
        """Claim records for an attempt, right before sending them (one send unit): the
        ids that may be sent now. Others are left out (another deliverer has them, or
        they are gone) and must not be sent. ``FencedOut`` when this replica no longer
        holds the lease of their project: send nothing more for it."""

    def confirm(self, project: str) -> None:
        """``FencedOut`` unless this replica is still sure to hold the lease this delivery
        speaks for ``project`` under: asked right before each post or edit, so that a
        replica that lost its lease in the middle of a delivery (paused past it, say)
        sends nothing more."""

    def fence(self, project: str) -> Fence:
        """The lease this delivery speaks for ``project`` under ("" for coordinator
        items), for the notifier's own store writes."""

    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        """The destination accepted the item; ``messages`` are the messages it created."""

    async def dead(self, record_id: int, error: str) -> None:
        """The destination will never accept this item."""

    def out_of_time(self) -> bool:
        """A graceful stop's deadline has passed: start no further item (the rest stays
        queued for the next start)."""


class DeliveryUnavailable(WatchdogError):
    """The destination cannot take anything now; retry after ``retry_after`` seconds if given.

    ``maybe_sent``: the request may have reached the destination (a timeout, a connection
    dropped after sending) rather than been refused, so the item is looked for before it
    is sent again."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, maybe_sent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class Notifier(Protocol):
    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None: ...
