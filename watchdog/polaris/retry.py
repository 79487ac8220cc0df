"""How the Polaris client retries a transient failure (:class:`RetryPolicy`).

A module of its own, without the HTTP client: ``polaris-watchdog check`` reasons about
the policy (can a retried request outlast a tick?) without loading aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``attempts`` in all, exponential backoff from
    ``base`` doubling up to ``cap`` with full jitter, ``Retry-After`` honoured up to
    ``max_retry_after``."""

    attempts: int = 4
    base: float = 0.25
    cap: float = 8.0
    max_retry_after: float = 60.0


#: The policy the bot's Polaris clients use (``run`` and the operator CLI).
DEFAULT_RETRY = RetryPolicy()
