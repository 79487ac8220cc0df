"""Answers from a Polaris that is broken in the ways that blind a watcher quietly.

The faults in :mod:`~watchdog.devtools.polaris_sim.faults` choose *when* to answer like
this; this module builds the answers: a listing that never ends (new job ids on every
page, or the same page again and again), an answer of many megabytes streamed a chunk at
a time (never built in memory), metrics with numbers no counter can have, job timestamps
that do not parse, and a body that trickles in a few bytes at a time. A client that
survives all of them without going quiet is one that can be trusted not to be blind.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

import structlog
from aiohttp import web

from watchdog.devtools.polaris_sim.answers import LISTING_TAIL, compact

log = structlog.get_logger(__name__)

#: ``Faults.endless``: every page says more follow, with ``new`` jobs or the ``repeat``ed page.
ENDLESS_KINDS: tuple[str, ...] = ("new", "repeat")
#: ``Faults.hostile_metrics`` values: what a chosen job's ``totals`` turn into.
HOSTILE_METRICS: tuple[str, ...] = (
    "negative",  # every counter below zero
    "nan",  # the NaN literal (not JSON, but what some encoders write)
    "infinity",  # the Infinity and -Infinity literals
    "huge",  # 1e308, finite and absurd
    "missing",  # no counters at all
    "strings",  # each counter as a string
    "null",  # each counter null
)
_TIMESTAMPS: dict[str, Any] = {
    "garbage": "yesterday, around noon",
    "impossible": "2024-13-45T25:61:99.000Z",
    "empty": "",
    "number": 1_700_000_000,
    "null": None,
}
#: ``Faults.bad_timestamps`` values: what a chosen job's created/updated timestamps become.
BAD_TIMESTAMPS: tuple[str, ...] = tuple(_TIMESTAMPS)
_CHUNK = 64 * 1024


def hostile_totals(totals: Mapping[str, int], mode: str) -> bytes:
    """A ``GET /metrics`` body whose totals are spoiled as ``mode`` says."""
    values: dict[str, Any]
    if mode == "negative":
        values = {name: -(value + 1) for name, value in totals.items()}
    elif mode == "nan":
        values = dict.fromkeys(totals, float("nan"))
    elif mode == "infinity":
        values = {
            name: float("-inf") if index % 2 else float("inf") for index, name in enumerate(totals)
        }
    elif mode == "huge":
        values = dict.fromkeys(totals, 1e308)
    elif mode == "missing":
        values = {}
    elif mode == "strings":
        values = {name: str(value) for name, value in totals.items()}
    elif mode == "null":
        values = dict.fromkeys(totals)
    else:
        raise ValueError(f"unknown hostile metrics {mode!r}")
    return compact({"totals": values})  # json writes NaN and Infinity as bare literals


def spoil_timestamps(data: dict[str, Any], mode: str) -> dict[str, Any]:
    """The job JSON with unreadable ``createdTimestamp`` and ``lastUpdatedTimestamp``."""
    value = _TIMESTAMPS[mode]
    return {**data, "createdTimestamp": value, "lastUpdatedTimestamp": value}


class PhantomJobs:
    """Jobs no project holds, each with a new id: what an endless listing lists.

    One job's JSON is encoded once as a template; every phantom is that template with a
    fresh id, so pages of a thousand phantoms and listings of many megabytes cost little.
    Ids are derived from ``namespace`` and a counter: the same run gives the same ids.
    """

    def __init__(self, template: bytes, template_id: str, namespace: str) -> None:
        if template.count(template_id.encode()) != 1:
            raise ValueError("the template must hold its id exactly once")
        self._head, _, self._tail = template.partition(template_id.encode())
        self._namespace = namespace
        self.made = 0

    def new_id(self) -> str:
        self.made += 1
        digest = hashlib.sha256(f"{self._namespace}/phantom/{self.made}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def take(self, count: int) -> list[bytes]:
        """The JSON of ``count`` phantom jobs, each with an id never listed before."""
        return [self._head + self.new_id().encode() + self._tail for _ in range(count)]


def huge_listing(phantoms: PhantomJobs, size: int) -> Iterator[bytes]:
    """A complete listing of at least ``size`` bytes, in chunks of about 64 KiB."""
    head, tail = b'{"values":[', LISTING_TAIL + b"false}"
    yield head
    written, separator = len(head), b""
    while written + len(tail) < size:
        batch: list[bytes] = []
        batch_size = 0
        while batch_size < _CHUNK and written + batch_size + len(tail) < size:
            element = separator + phantoms.take(1)[0]
            separator = b","
            batch.append(element)
            batch_size += len(element)
        yield b"".join(batch)
        written += batch_size
    yield tail


def padded(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` grown to at least ``size`` bytes and still the same JSON document.

    An object gets a leading ``"padding"`` string field (the rest unchanged); anything
    else is followed by whitespace, which JSON allows.
    """
    if body.startswith(b"{"):
        rest = body[1:].lstrip()
        head, tail = b'{"padding":"', b'"' + (rest if rest.startswith(b"}") else b"," + rest)
        filler = b"x"
    else:
        head, tail, filler = body, b"", b" "
    yield head
    missing = max(0, size - len(head) - len(tail))
    block = filler * _CHUNK
    while missing > 0:
        piece = block[: min(missing, _CHUNK)]
        yield piece
        missing -= len(piece)
    yield tail


async def send(
    request: web.Request,
    chunks: Iterable[bytes],
    *,
    pause: float,
    piece: int,
    sleep: Callable[[float], Awaitable[None]],
    length: int | None = None,
) -> web.StreamResponse:
    """Stream a 200 JSON answer; with ``pause`` > 0, ``piece`` bytes after each pause.

    Without ``length`` the answer is chunked, so a client learns its size only by reading
    it. A client that gives up half way only ends the stream.
    """
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if length is not None:
        response.content_length = length
    try:
        await response.prepare(request)
        for chunk in chunks:
            if pause <= 0:
                await response.write(chunk)
                continue
            for start in range(0, len(chunk), piece):
                await sleep(pause)
                await response.write(chunk[start : start + piece])
        await response.write_eof()
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError included
        log.info("sim.client_went_away", path=request.path)
    return response
