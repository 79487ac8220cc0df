"""Slack request signing (v0): is this HTTP request really from Slack, and fresh?

Every slash command and button click reaching ``/slack/commands`` or
``/slack/interactions`` is checked here over the raw body, before anything parses it.
The HMAC and its constant-time comparison are slack-sdk's
(:class:`slack_sdk.signature.SignatureVerifier`); this module adds what the SDK leaves
to the caller: header shapes checked first (the SDK raises on a garbled timestamp), a
reason for each refusal, and an injectable clock. Neither the secret nor a signature is
ever put into a log line or an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr
from slack_sdk.signature import Clock, SignatureVerifier

from watchdog.errors import InputError

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
#: Slack's replay window; slack-sdk hard-codes the same five minutes.
MAX_SKEW = 300.0

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Signed:
    """What a verified request was signed with: what tells it from a replay of it."""

    timestamp: int
    signature: str

    def __repr__(self) -> str:
        return f"Signed(timestamp={self.timestamp}, signature=...)"  # never shown


class VerificationError(InputError):
    """The request is not a fresh, correctly signed Slack request; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _InjectedClock(Clock):
    """slack-sdk's clock interface (``now() -> float``) over our injected clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()


class RequestVerifier:
    """Checks ``X-Slack-Signature`` and ``X-Slack-Request-Timestamp`` of one request."""

    def __init__(
        self,
        signing_secret: SecretStr,
        clock: Callable[[], float] = time.time,
        max_skew: float = MAX_SKEW,
    ) -> None:
        # The SDK refuses anything older than five minutes on its own; a wider window here
        # would be silently ignored, and a wider replay window is not wanted anyway.
        if not 0 < max_skew <= MAX_SKEW:
            raise ValueError(f"max_skew must be in (0, {MAX_SKEW:g}] seconds")
        secret = signing_secret.get_secret_value()
        if not secret.strip():
            raise ValueError("the Slack signing secret is empty")
        self._clock = clock
        self._max_skew = max_skew
        self._sdk = SignatureVerifier(secret, clock=_InjectedClock(clock))

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Signed:
        """The request's timestamp and signature when it is authentic; raise
        :class:`VerificationError` if not."""
        timestamp = _header(headers, TIMESTAMP_HEADER)
        signature = _header(headers, SIGNATURE_HEADER)
        if timestamp is None:
            raise VerificationError("missing X-Slack-Request-Timestamp header")
        if signature is None:
            raise VerificationError("missing X-Slack-Signature header")
        timestamp = timestamp.strip()
        if not _TIMESTAMP.fullmatch(timestamp):
            raise VerificationError("malformed X-Slack-Request-Timestamp header")
        if not _SIGNATURE.fullmatch(signature.strip()):
            raise VerificationError("malformed X-Slack-Signature header")
        skew = self._clock() - int(timestamp)
        if abs(skew) > self._max_skew:
            raise VerificationError(
                f"stale request: timestamp is {abs(skew):.0f}s {'old' if skew > 0 else 'ahead'}"
            )
        try:
            valid = self._sdk.is_valid(body=body, timestamp=timestamp, signature=signature.strip())
        except UnicodeDecodeError:
            # The SDK decodes the body as UTF-8; Slack only ever sends UTF-8, so anything
            # else cannot carry a valid signature.
            valid = False
        if not valid:
            raise VerificationError("bad signature")
        return Signed(int(timestamp), signature.strip())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works for plain dicts and multidicts alike."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None
