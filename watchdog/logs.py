"""structlog set-up: JSON lines in a container, readable coloured lines in a terminal.

Configured once at start-up. Context such as ``job_id``, ``rule``, ``user`` and ``command``
is bound with contextvars where the work happens. A last processor masks every secret
value the process knows, wherever it would appear, so a careless ``str(exc)`` that echoes
a token cannot leak it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

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


def configure_logging(
    fmt: str = "auto",
    *,
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """``fmt``: ``json``, ``console`` or ``auto`` (console on a TTY, JSON otherwise)."""
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        shared.append(SecretMasker(secrets))
        renderer = structlog.processors.JSONRenderer()
    else:
        # The console renderer formats exceptions itself (with colours); mask first.
        shared.append(SecretMasker(secrets))
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; keep them quiet unless they warn
    # (slack-sdk's debug output includes request details we do not want in logs).
    logging.basicConfig(
        level=logging.WARNING, stream=out, format="%(levelname)s %(name)s: %(message)s", force=True
    )
