"""What the simulator saw: per-project counts of API requests, and the keys they carried.

Tests, benchmarks and the chaos test check what a client did (how many requests, which
paths, how many at once, which API key) without instrumenting the client. Each simulated
project keeps its own :class:`SimStats`, so a test can prove that no request to one
project carried another project's key.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any


def key_label(credential: str, known: Iterable[str]) -> str:
    """How a carried credential is recorded: a key this simulator issued as itself,
    nothing as ``""``, anything else as ``unknown:`` and a hash prefix.

    A stranger's key (say a real one, sent to the simulator by mistake) is never kept or
    shown by the unauthenticated ``/_sim/stats``; its hash still tells two apart.
    """
    if not credential or credential in set(known):
        return credential
    return "unknown:" + hashlib.sha256(credential.encode()).hexdigest()[:12]


class SimStats:
    """Counts of the API requests one project answered (the admin routes not included)."""

    def __init__(
        self, *, monotonic: Callable[[], float] | None = None, log_size: int = 10_000
    ) -> None:
        self._monotonic = monotonic or time.monotonic
        self.requests = 0
        self.by_endpoint: Counter[str] = Counter()
        #: Requests per carried key, labelled by :func:`key_label` (``""``: no key).
        self.keys: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        #: (monotonic time, method, raw path as sent, raw query string) per API request.
        self.request_log: deque[tuple[float, str, str, str]] = deque(maxlen=log_size)
        #: (job id, desiredExecutionStatus) of every accepted status request.
        self.status_changes: list[tuple[str, str]] = []

    def reset(self) -> None:
        """Forget counts and the log; requests still running stay counted as in flight."""
        self.requests = 0
        self.by_endpoint.clear()
        self.keys.clear()
        self.max_in_flight = self.in_flight
        self.request_log.clear()
        self.status_changes.clear()

    def begin(self, kind: str, method: str, path: str, query: str, key: str = "") -> None:
        self.requests += 1
        self.by_endpoint[kind] += 1
        self.keys[key] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.request_log.append((self._monotonic(), method, path, query))

    def end(self) -> None:
        self.in_flight -= 1

    def to_json(self, log_limit: int = 100) -> dict[str, Any]:
        recent = list(self.request_log)[-log_limit:] if log_limit > 0 else []
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "keys": dict(self.keys),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "status_changes": [list(change) for change in self.status_changes],
            "request_log": [list(entry) for entry in recent],
        }
