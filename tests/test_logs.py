"""Logging: JSON lines off a terminal, bound context on every line, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

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
