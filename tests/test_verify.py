"""Slack request signing: the documented test vector, tampering, stale and replayed
requests, missing headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from watchdog.slack.commands.replay import ReplayGuard
from watchdog.slack.commands.verify import MAX_SKEW, RequestVerifier, Signed, VerificationError
from watchdog.store import StoreError
from watchdog.store.memory import MemoryStore

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = 1531420618
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
HEADERS = {"X-Slack-Request-Timestamp": str(TIMESTAMP), "X-Slack-Signature": SIGNATURE}


def verifier(now: float = TIMESTAMP) -> RequestVerifier:
    return RequestVerifier(SecretStr(SECRET), clock=lambda: now)


def test_slack_documented_vector_verifies() -> None:
    """Slack's own example request passes with the clock pinned to its timestamp."""
    verifier().verify(BODY, HEADERS)


def test_header_names_are_case_insensitive() -> None:
    """Lowercase header names (as some proxies forward them) verify too."""
    verifier().verify(BODY, {k.lower(): v for k, v in HEADERS.items()})


@pytest.mark.parametrize("index", [0, 100, len(BODY) - 1])
def test_one_flipped_body_byte_fails(index: int) -> None:
    """Changing a single byte of the body breaks the signature."""
    tampered = bytearray(BODY)
    tampered[index] ^= 0x01
    with pytest.raises(VerificationError, match="bad signature"):
        verifier().verify(bytes(tampered), HEADERS)


def test_flipped_signature_digit_fails() -> None:
    """A signature that differs in one hex digit is refused."""
    bad = SIGNATURE[:-1] + ("0" if SIGNATURE[-1] != "0" else "1")
    with pytest.raises(VerificationError, match="bad signature"):
        verifier().verify(BODY, {**HEADERS, "X-Slack-Signature": bad})


@pytest.mark.parametrize("offset", [301, -301, 86_400])
def test_stale_or_future_timestamp_fails(offset: float) -> None:
    """A request more than five minutes off the clock is a replay and is refused."""
    with pytest.raises(VerificationError, match="stale"):
        verifier(TIMESTAMP + offset).verify(BODY, HEADERS)


def test_timestamp_within_five_minutes_passes() -> None:
    """Clock skew up to five minutes is tolerated."""
    verifier(TIMESTAMP + 300).verify(BODY, HEADERS)


@pytest.mark.parametrize("missing", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_missing_header_fails(missing: str) -> None:
    """Each of the two signing headers is required."""
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    with pytest.raises(VerificationError, match="missing"):
        verifier().verify(BODY, headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Slack-Request-Timestamp", "yesterday"),
        ("X-Slack-Request-Timestamp", "1e9"),
        ("X-Slack-Signature", "v1=" + "0" * 64),
        ("X-Slack-Signature", "v0=é" + "0" * 63),
        ("X-Slack-Signature", ""),
    ],
)
def test_garbled_header_fails_cleanly(name: str, value: str) -> None:
    """Malformed headers give a VerificationError, not a crash inside slack-sdk."""
    with pytest.raises(VerificationError, match="malformed"):
        verifier().verify(BODY, {**HEADERS, name: value})


def test_non_utf8_body_fails_cleanly() -> None:
    """A body that is not UTF-8 is refused as a bad signature, not an exception."""
    body = b"\xff\xfe" + BODY
    digest = hmac.new(SECRET.encode(), b"v0:%d:" % TIMESTAMP + body, "sha256").hexdigest()
    signature = "v0=" + digest
    with pytest.raises(VerificationError, match="bad signature"):
        verifier().verify(body, {**HEADERS, "X-Slack-Signature": signature})


def test_errors_never_contain_the_secret_or_signature() -> None:
    """The refusal reason names the problem without echoing secrets."""
    with pytest.raises(VerificationError) as caught:
        verifier().verify(BODY + b"x", HEADERS)
    assert SECRET not in str(caught.value)
    assert SIGNATURE not in str(caught.value)


def test_own_signature_round_trips() -> None:
    """A request signed the way the tests sign theirs verifies at the current clock."""
    now = 1_700_000_000
    body = b"user_id=U1&text=help"
    digest = hmac.new(b"test-secret", b"v0:%d:" % now + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + digest}
    RequestVerifier(SecretStr("test-secret"), clock=lambda: now).verify(body, headers)


def test_empty_secret_or_wide_window_is_refused() -> None:
    """A verifier that would accept anything (or old replays) cannot be built."""
    with pytest.raises(ValueError, match="empty"):
        RequestVerifier(SecretStr("  "))
    with pytest.raises(ValueError, match="max_skew"):
        RequestVerifier(SecretStr(SECRET), max_skew=3600)


# -- replays: a verified request is served once -------------------------------------------


class Claims:
    """Store.claim_once over a dict, recording what it was asked; ``down`` makes it fail."""

    def __init__(self) -> None:
        self.keys: dict[str, float] = {}
        self.down = False

    async def __call__(self, key: str, until: float) -> bool:
        if self.down:
            raise StoreError("state store unreachable")
        if key in self.keys:
            return False
        self.keys[key] = until
        return True


async def test_a_verified_request_is_first_once_then_a_replay() -> None:
    """Slack's documented request verifies to its timestamp and signature; the guard
    serves it once, remembering it for as long as that timestamp verifies."""
    signed = verifier().verify(BODY, HEADERS)
    assert (signed.timestamp, signed.signature) == (TIMESTAMP, SIGNATURE)
    claims = Claims()
    guard = ReplayGuard(claims, clock=lambda: TIMESTAMP)
    assert await guard.first_time(signed) is True
    assert await guard.first_time(verifier(TIMESTAMP + 299).verify(BODY, HEADERS)) is False
    [(key, until)] = claims.keys.items()
    assert until == TIMESTAMP + MAX_SKEW + 1
    assert SIGNATURE.removeprefix("v0=") not in key  # a digest: the store holds no signature


async def test_a_replay_sent_to_another_replica_is_refused_too() -> None:
    """Two replicas share the store: a request served by one is a replay to the other."""
    store = MemoryStore(clock=lambda: TIMESTAMP)
    await store.open()
    one = ReplayGuard(store.claim_once, clock=lambda: TIMESTAMP)
    other = ReplayGuard(store.claim_once, clock=lambda: TIMESTAMP)
    signed = verifier().verify(BODY, HEADERS)
    assert await one.first_time(signed) is True
    assert await other.first_time(signed) is False


async def test_with_the_store_down_a_replica_still_refuses_replays_it_served() -> None:
    """A store outage does not stop commands: a request is served, its replay to the same
    replica refused, and the degraded check logged once."""
    claims = Claims()
    claims.down = True
    guard = ReplayGuard(claims, clock=lambda: TIMESTAMP)
    signed = verifier().verify(BODY, HEADERS)
    with capture_logs() as logs:
        assert await guard.first_time(signed) is True
        assert await guard.first_time(signed) is False
        other = Signed(TIMESTAMP, "v0=" + "1" * 64)
        assert await guard.first_time(other) is True
    assert [e["event"] for e in logs] == ["slack.replay_check_degraded"]


async def test_this_replicas_memory_forgets_requests_once_they_are_stale() -> None:
    """The replica's own memory of served requests ends with their window."""
    now = [float(TIMESTAMP)]
    claims = Claims()
    claims.down = True
    guard = ReplayGuard(claims, clock=lambda: now[0])
    signed = verifier().verify(BODY, HEADERS)
    assert await guard.first_time(signed)
    now[0] += MAX_SKEW + 2  # the verifier refuses it from here on anyway
    assert await guard.first_time(signed) is True
