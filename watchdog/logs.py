"""structlog set-up: JSON lines in a container, readable coloured lines in a terminal.

Configured once at start-up, for the bot's own events and for the standard library's
log records (slack_sdk, aiohttp, psycopg, asyncio), which go through the same
processors (``structlog.stdlib.ProcessorFormatter``). Context such as ``job_id``,
``rule``, ``user`` and ``command`` is bound with contextvars where the work happens. A
last processor masks every secret value the process knows, wherever it would appear, so
a careless ``str(exc)`` that echoes a token cannot leak it, not even in a library's
warning or traceback.

Logging never fails the code that logs: a log stream that refuses writes (a full disk
under a log file, a closed pipe) loses those lines, and the bot goes on watching and
saying so in ``/healthz``."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "***"


class SecretMasker:
    """A processor that replaces known secret values in every string of an event."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short values would mask innocent text; real keys and tokens are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self._mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._mask(v) for v in value)
        return value

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        if not self._secrets:
            return event
        return {k: self._mask(v) for k, v in event.items()}


class UnfailingStream(io.TextIOBase):
    """A text stream whose write failures are swallowed (and counted in ``dropped``).

    structlog's PrintLogger lets an ``OSError`` from ``print`` escape into whatever was
    logging: with the log file on a full disk, the first log line of the watch loop
    stopped the loop, and every later one crashed shutdown."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.dropped = 0

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # ValueError: the stream was closed
            self.dropped += 1
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def writable(self) -> bool:
        return True


def configure_logging(
    fmt: str = "auto",
    *,
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """``fmt``: ``json``, ``console`` or ``auto`` (console on a TTY, JSON otherwise).

    ``level`` filters the bot's own events; the standard library's loggers (slack_sdk,
    aiohttp, psycopg, asyncio) stay at WARNING (or ``level``, when that is stricter) and
    their records are rendered by the same processors, so every line is JSON (or console
    text), carries the bound context, and has its secrets masked.
    """
    out = cast(TextIO, UnfailingStream(stream or sys.stderr))
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    stamp: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # plain_traceback prints the `exception` text that format_exc_info made.
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    # Tracebacks become text before the masker, in both formats: an exception message
    # that echoes a token is masked like any other string (the console renderer would
    # otherwise format the exception itself, after the masker).
    finish: list[Processor] = [
        structlog.processors.format_exc_info,
        SecretMasker(secrets),
        renderer,
    ]
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*stamp, *finish],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library: bridge their records into the same
    # processors. Keep them quiet unless they warn (slack-sdk's debug output includes
    # request details we do not want in logs).
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamp, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, threshold))
