"""The notifier interface: what the outbox dispatcher hands items to.

A notifier receives outbox records in enqueue order and reports, one by one, which it
delivered (:meth:`Receipts.done`) or can never deliver (:meth:`Receipts.dead`). When the
destination is down it raises :class:`DeliveryUnavailable`: the dispatcher keeps the rest
queued and tries again later, so nothing is lost and nothing jumps the queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from watchdog.errors import WatchdogError
from watchdog.store import MessageRef, OutboxRecord


class Receipts(Protocol):
    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        """The destination accepted the item; ``messages`` are the messages it created."""

    async def dead(self, record_id: int, error: str) -> None:
        """The destination will never accept this item."""

    def out_of_time(self) -> bool:
        """A graceful stop's deadline has passed: start no further item (the rest stays
        queued for the next start)."""


class DeliveryUnavailable(WatchdogError):
    """The destination cannot take anything now; retry after ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Notifier(Protocol):
    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None: ...
