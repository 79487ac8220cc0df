"""What is broken in a simulated Polaris project right now, and the answers it causes.

Tests, benchmarks and the chaos test break the simulated API on purpose and then check
what the client did. Transport-level faults: latency, 5xx, 429 with Retry-After,
malformed bodies (HTML, truncated JSON, wrong types), hangs. Hostile answers (issue
"Never silently blind"), built by :mod:`~watchdog.devtools.polaris_sim.hostile`: a listing
that never ends (``endless``), an answer of many megabytes (``huge_mb``), a body that
trickles in (``trickle``), metrics with impossible numbers for chosen jobs
(``hostile_metrics``) and unreadable timestamps for chosen jobs (``bad_timestamps``).

Every project has its own :class:`Faults`. They apply to the Polaris API only, never to
the ``/_sim/`` admin routes that set them, so a broken API stays controllable.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

from watchdog.devtools.polaris_sim.answers import error_response
from watchdog.devtools.polaris_sim.hostile import BAD_TIMESTAMPS, ENDLESS_KINDS, HOSTILE_METRICS

#: Endpoint kinds a fault can be limited to (``Faults.endpoints``).
ENDPOINT_KINDS: tuple[str, ...] = (
    "list",
    "job",
    "status",
    "set_status",
    "metrics",
    "logs",
    "progress",
    "reset",
)
MALFORMED_KINDS: tuple[str, ...] = ("html", "truncated", "types")
#: The largest ``huge_mb``: big enough to hurt any client, small enough not to fill a disk.
MAX_HUGE_MB = 4096.0
#: In ``hostile_metrics`` and ``bad_timestamps``: every job of the project.
EVERY_JOB = "*"
_ERROR_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Scheduled maintenance</title></head>"
    "<body><h1>Polaris is down for maintenance</h1><p>Please try again later.</p></body></html>"
)


def _number(name: str, value: Any, *, integer: bool, optional: bool) -> Any:
    if value is None and optional:
        return None
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise ValueError(f"{name} must be a non-negative {'integer' if integer else 'number'}")
    return value


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> Any:
    if value is not None and value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)}")
    return value


def _per_job(name: str, value: Any, valid: tuple[str, ...]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(job_id, str) and job_id and mode in valid for job_id, mode in value.items()
    ):
        raise ValueError(
            f'{name} must map job ids (or "{EVERY_JOB}" for every job) to one of {", ".join(valid)}'
        )
    return dict(value)


def _validated(name: str, value: Any) -> Any:
    """``value`` as field ``name`` keeps it; ValueError saying what is wrong."""
    if name == "error_status":
        if value is not None and (not isinstance(value, int) or not 400 <= value <= 599):
            raise ValueError("error_status must be an HTTP error status (400-599)")
        return value
    if name == "malformed":
        return _choice(name, value, MALFORMED_KINDS)
    if name == "endless":
        return _choice(name, value, ENDLESS_KINDS)
    if name == "endpoints":
        if value is None:
            return None
        listed = isinstance(value, list | tuple | set | frozenset)
        if not listed or not set(value) <= set(ENDPOINT_KINDS):
            raise ValueError(f"endpoints must list some of {', '.join(ENDPOINT_KINDS)}")
        return frozenset(value)
    if name == "hostile_metrics":
        return _per_job(name, value, HOSTILE_METRICS)
    if name == "bad_timestamps":
        return _per_job(name, value, BAD_TIMESTAMPS)
    if name == "trickle_bytes":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("trickle_bytes must be a positive integer")
        return value
    if name == "huge_mb":
        value = _number(name, value, integer=False, optional=True) or 0.0
        if value > MAX_HUGE_MB:
            raise ValueError(f"huge_mb must be at most {MAX_HUGE_MB:g}")
        return value
    integer, optional = name.endswith("_count"), name != "rate_limit_count"
    value = _number(name, value, integer=integer, optional=optional)
    if value is None and name in ("latency", "hang", "trickle"):
        return 0.0
    return value


@dataclass
class Faults:
    """What is currently broken; counts tick down per affected request, then clear.

    ``endpoints`` limits the transport faults, ``huge_mb`` and ``trickle`` to some endpoint
    kinds. ``endless`` concerns the listing, ``hostile_metrics`` the metrics and
    ``bad_timestamps`` the job JSON wherever it appears; those two map a job id, or
    ``"*"`` for every job, to a mode.
    """

    latency: float = 0.0
    error_status: int | None = None
    error_count: int | None = None  # None: fail until cleared
    retry_after: float | None = None
    rate_limit_count: int = 0
    malformed: str | None = None
    malformed_count: int | None = None
    hang: float = 0.0
    hang_count: int | None = None
    endpoints: frozenset[str] | None = None  # None: every endpoint kind
    endless: str | None = None  # "new": fresh job ids on every page; "repeat": the same page
    huge_mb: float = 0.0  # answers of at least this many megabytes (10**6 bytes)
    trickle: float = 0.0  # seconds before each piece of the body
    trickle_bytes: int = 1  # bytes per piece
    hostile_metrics: dict[str, str] = field(default_factory=dict)
    bad_timestamps: dict[str, str] = field(default_factory=dict)

    def configure(self, data: Mapping[str, Any]) -> None:
        """Replace every fault by ``data`` (``{}`` clears all); ValueError when invalid."""
        names = {field.name for field in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fresh = Faults()
        for name, value in data.items():
            setattr(fresh, name, _validated(name, value))
        for field_ in fields(self):
            setattr(self, field_.name, getattr(fresh, field_.name))

    def clear(self) -> None:
        self.configure({})

    def to_json(self) -> dict[str, Any]:
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["endpoints"] = sorted(self.endpoints) if self.endpoints is not None else None
        return data

    def affects(self, kind: str) -> bool:
        return self.endpoints is None or kind in self.endpoints

    def metrics_for(self, job_id: str) -> str | None:
        """How this job's metrics are spoiled, if they are."""
        return self.hostile_metrics.get(job_id) or self.hostile_metrics.get(EVERY_JOB)

    def timestamps_for(self, job_id: str) -> str | None:
        """How this job's timestamps are spoiled, if they are (asked per job per listing)."""
        if not self.bad_timestamps:
            return None
        return self.bad_timestamps.get(job_id) or self.bad_timestamps.get(EVERY_JOB)

    def _take(self, count_field: str, fault_field: str, cleared: Any) -> bool:
        """Use up one request of a counted fault; the fault clears when the count runs out."""
        count = getattr(self, count_field)
        if count is None:
            return True
        if count <= 0:
            setattr(self, fault_field, cleared)
            return False
        setattr(self, count_field, count - 1)
        if count == 1:
            setattr(self, fault_field, cleared)
        return True

    def _retry_headers(self) -> dict[str, str]:
        seconds = self.retry_after
        if seconds is None:
            return {}
        # Whole seconds as HTTP says; a fraction is kept so tests can retry quickly.
        return {"Retry-After": str(int(seconds)) if float(seconds).is_integer() else str(seconds)}

    async def before(
        self, kind: str, sleep: Callable[[float], Awaitable[None]]
    ) -> web.Response | None:
        """Faults that act before the handler: delays, and answers instead of it."""
        if not self.affects(kind):
            return None
        if self.latency > 0:
            await sleep(self.latency)
        hang = self.hang  # read first: taking the last counted hang clears it
        if hang > 0 and self._take("hang_count", "hang", 0.0):
            await sleep(hang)
        if self.rate_limit_count > 0:
            self.rate_limit_count -= 1
            headers = self._retry_headers()
            return error_response(429, "TooManyRequests", "Too many requests", headers)
        status = self.error_status
        if status is not None and self._take("error_count", "error_status", None):
            headers = self._retry_headers() if status in (429, 503) else {}
            code = _ERROR_CODES.get(status, "Error")
            return error_response(status, code, f"Injected failure ({status})", headers)
        if self.malformed == "html" and self._take("malformed_count", "malformed", None):
            return web.Response(text=_HTML_PAGE, content_type="text/html")
        return None

    def after(self, kind: str, response: web.StreamResponse) -> web.StreamResponse:
        """Faults that corrupt a successful JSON answer: cut short, or the wrong types."""
        mode = self.malformed
        if mode not in ("truncated", "types") or not self.affects(kind):
            return response
        if response.status != 200 or not isinstance(response, web.Response):
            return response
        body = response.body
        if not isinstance(body, bytes) or not self._take("malformed_count", "malformed", None):
            return response
        if mode == "truncated":
            return web.Response(body=body[: len(body) // 2], content_type="application/json")
        return web.json_response(wrong_types(kind, json.loads(body)))


def wrong_types(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Valid JSON of the right shape whose values have the wrong types."""
    if kind == "list":
        return {"values": {"0": data.get("values")}, "moreResultsAvailable": "no"}
    if kind == "metrics":
        return {"totals": {name: str(value) for name, value in data["totals"].items()}}
    if kind == "status":
        return {"executionStatus": 42}
    if kind == "logs":
        return {"logs": "no logs today"}
    if kind == "progress":
        return {"overallProgress": "halfway"}
    return {**data, "id": 12345, "health": "broken"}
