"""Logging: JSON lines off a terminal, bound context on every line, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from watchdog.logs import MASK, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging is process-wide: put structlog and logging back afterwards."""
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_json_lines_carry_bound_job_id_and_level() -> None:
    """Off a terminal ('auto'), each event is one JSON object with the bound context."""
    stream = io.StringIO()
    configure_logging("auto", stream=stream)
    with structlog.contextvars.bound_contextvars(job_id="0191104b-7e8e-4aaa-8bbb-123456789abc"):
        structlog.get_logger("t").warning("watch.something", rule="job-unhealthy")
    (event,) = _lines(stream)
    assert event["event"] == "watch.something"
    assert event["job_id"] == "0191104b-7e8e-4aaa-8bbb-123456789abc"
    assert event["rule"] == "job-unhealthy" and event["level"] == "warning"
    assert "timestamp" in event


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    """A secret inside a message, a nested value or an exception text is replaced by ***."""
    stream = io.StringIO()
    secret = "pok_supersecretkey_0123456789"
    configure_logging("json", secrets=[secret, "xoxb-1-2-3-abcdefgh"], stream=stream)
    log = structlog.get_logger("t")
    log.error("polaris.failed", error=f"401 for key {secret}", extra={"k": [secret]})
    try:
        raise RuntimeError("token xoxb-1-2-3-abcdefgh rejected")
    except RuntimeError:
        log.exception("slack.failed")
    text = stream.getvalue()
    assert secret not in text and "xoxb-1-2-3-abcdefgh" not in text
    assert text.count(MASK) >= 3


def test_console_format_is_readable_text() -> None:
    """'console' renders key=value text, not JSON."""
    stream = io.StringIO()
    configure_logging("console", stream=stream)
    structlog.get_logger("t").info("watch.started", rules=3)
    line = stream.getvalue()
    assert "watch.started" in line and "rules=3" in line and not line.startswith("{")


def test_level_filter_drops_debug_lines() -> None:
    """The default level is info: debug events are not written."""
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    structlog.get_logger("t").debug("noise")
    assert stream.getvalue() == ""


def test_a_slack_sdk_warning_is_a_json_line_with_its_secret_masked() -> None:
    """A standard-library record from slack_sdk goes through structlog: one JSON object
    with level, logger, timestamp and bound context, its secret masked; info is dropped."""
    stream = io.StringIO()
    token = "xapp-1-A0123-9876543210-abcdef0123456789"
    configure_logging("auto", secrets=[token], stream=stream)
    sdk = logging.getLogger("slack_sdk.socket_mode.aiohttp")
    with structlog.contextvars.bound_contextvars(command="status"):
        sdk.info("Sending a ping message with %s", token)
        sdk.warning("Failed to send a ping message (s-1): token %s refused", token)
    assert token not in stream.getvalue()
    (event,) = _lines(stream)
    assert event["event"] == f"Failed to send a ping message (s-1): token {MASK} refused"
    assert event["level"] == "warning" and event["logger"] == "slack_sdk.socket_mode.aiohttp"
    assert event["command"] == "status" and "timestamp" in event


@pytest.mark.parametrize("fmt", ["json", "console"])
async def test_an_exception_logged_by_aiohttp_is_rendered_and_masked(fmt: str) -> None:
    """A handler crash that aiohttp's server logs with its traceback is rendered by our
    processors (JSON or console), and the secret in the exception message is masked."""
    secret = "pok_handler-secret-0123456789"

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError(f"rejected key {secret}")

    stream = io.StringIO()
    configure_logging(fmt, secrets=[secret], stream=stream)
    app = web.Application()
    app.router.add_get("/", crash)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/")) as resp:
            assert resp.status == 500
    text = stream.getvalue()
    assert secret not in text and f"RuntimeError: rejected key {MASK}" in text
    assert "Traceback (most recent call last)" in text
    if fmt == "json":
        (event,) = (e for e in _lines(stream) if e.get("logger") == "aiohttp.server")
        assert event["level"] == "error"
        assert str(event["event"]).startswith("Error handling request")
        assert f"rejected key {MASK}" in str(event["exception"])
    else:
        assert not text.startswith("{") and "Error handling request" in text


class _FullDisk(io.StringIO):
    """A log stream on a disk that refuses every write."""

    def write(self, text: str) -> int:
        raise OSError(27, "File too large")

    def flush(self) -> None:
        raise OSError(27, "File too large")


def test_a_log_stream_that_refuses_writes_never_fails_the_caller() -> None:
    """With the log file on a full disk, logging (ours and the libraries') loses the line
    instead of raising into the watch loop that logged it."""
    configure_logging("json", stream=_FullDisk())
    structlog.get_logger("t").error("watch.cannot_watch", kind="store")
    logging.getLogger("aiohttp.client").warning("a library warning")
