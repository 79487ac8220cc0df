"""Controlling and observing the Polaris simulator: faults, request statistics, ``/_sim/``.

Tests, benchmarks and the chaos test break the simulated API on purpose (latency, 5xx,
429 with Retry-After, malformed bodies, hangs) and then check what the client did (how
many requests, which paths, how many at once). Faults apply to the Polaris API only,
never to the ``/_sim/`` admin routes that set them, so a broken API stays controllable.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

if TYPE_CHECKING:
    from watchdog.devtools.polaris_sim.jobs import SimJob
    from watchdog.devtools.polaris_sim.simulator import Simulator

log = structlog.get_logger(__name__)

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


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Polaris' error body ``{code, message}`` with ``status``."""
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


class ApiError(Exception):
    """An error answer, raised from anywhere in a handler; the middleware sends it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, else a 400."""
    try:
        data = json.loads(await request.text())
    except ValueError:  # also UnicodeDecodeError
        raise bad_request("The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object")
    return data


def _number(name: str, value: Any, *, integer: bool, optional: bool) -> Any:
    if value is None and optional:
        return None
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise ValueError(f"{name} must be a non-negative {'integer' if integer else 'number'}")
    return value


@dataclass
class Faults:
    """What is currently broken; counts tick down per affected request, then clear."""

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

    def configure(self, data: Mapping[str, Any]) -> None:
        """Replace every fault by ``data`` (``{}`` clears all); ValueError when invalid."""
        names = {field.name for field in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fresh = Faults()
        for name, value in data.items():
            if name == "error_status":
                if value is not None and (not isinstance(value, int) or not 400 <= value <= 599):
                    raise ValueError("error_status must be an HTTP error status (400-599)")
            elif name == "malformed":
                if value is not None and value not in MALFORMED_KINDS:
                    raise ValueError(f"malformed must be one of {', '.join(MALFORMED_KINDS)}")
            elif name == "endpoints":
                if value is not None:
                    listed = isinstance(value, list | tuple | set | frozenset)
                    if not listed or not set(value) <= set(ENDPOINT_KINDS):
                        raise ValueError(f"endpoints must list some of {', '.join(ENDPOINT_KINDS)}")
                    value = frozenset(value)
            else:
                integer = name.endswith("_count")
                value = _number(name, value, integer=integer, optional=name != "rate_limit_count")
                if value is None and name in ("latency", "hang"):
                    value = 0.0
            setattr(fresh, name, value)
        for field in fields(self):
            setattr(self, field.name, getattr(fresh, field.name))

    def clear(self) -> None:
        self.configure({})

    def to_json(self) -> dict[str, Any]:
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["endpoints"] = sorted(self.endpoints) if self.endpoints is not None else None
        return data

    def affects(self, kind: str) -> bool:
        return self.endpoints is None or kind in self.endpoints

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


class SimStats:
    """Counts of the API requests the simulator answered (the admin routes not included)."""

    def __init__(
        self, *, monotonic: Callable[[], float] | None = None, log_size: int = 10_000
    ) -> None:
        self._monotonic = monotonic or time.monotonic
        self.requests = 0
        self.by_endpoint: Counter[str] = Counter()
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
        self.max_in_flight = self.in_flight
        self.request_log.clear()
        self.status_changes.clear()

    def begin(self, kind: str, method: str, path: str, query: str) -> None:
        self.requests += 1
        self.by_endpoint[kind] += 1
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
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "status_changes": [list(change) for change in self.status_changes],
            "request_log": [list(entry) for entry in recent],
        }


def job_summary(job: SimJob, now: float) -> dict[str, Any]:
    """A job as the admin routes show it: behaviour and counters too."""
    view = job.view(now)
    health = {"status": view.health_status, "code": view.health_code}
    health["message"] = view.health_message
    return {
        "id": job.id,
        "type": job.type,
        "table": job.table,
        "behaviour": job.behaviour,
        "executionStatus": view.execution_status,
        "health": health,
        "totals": job.totals_at(now),
    }


def admin_routes(sim: Simulator) -> list[web.RouteDef]:
    """The unauthenticated ``/_sim/`` routes that demo, benchmarks and chaos tests use."""

    async def get_stats(request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("log", "100"))
        except ValueError:
            raise bad_request("log must be an integer") from None
        return web.json_response(sim.stats.to_json(limit))

    async def reset_stats(request: web.Request) -> web.Response:
        sim.stats.reset()
        return web.json_response(sim.stats.to_json(0))

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(sim.faults.to_json())

    async def set_faults(request: web.Request) -> web.Response:
        data = await read_json_object(request)
        try:
            sim.faults.configure(data)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        log.info("sim.faults_set", faults=data)
        return web.json_response(sim.faults.to_json())

    async def list_jobs(request: web.Request) -> web.Response:
        return web.json_response([job_summary(job, sim.clock()) for job in sim.jobs])

    async def add_jobs(request: web.Request) -> web.Response:
        data = await read_json_object(request)
        count = data.pop("count", 1)
        allowed = {"type", "behaviour", "table", "cycle", "max_parse_exceptions", "connection"}
        if set(data) - allowed or not isinstance(count, int) or not 0 <= count <= 100_000:
            raise bad_request(
                f"expected count (0..100000) and some of {', '.join(sorted(allowed))}"
            )
        try:
            ids = [sim.add_job(**data).id for _ in range(count)]
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return web.json_response({"ids": ids})

    async def change_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        data = await read_json_object(request)
        allowed = {"health", "code", "message", "executionStatus", "totals"}
        if set(data) - allowed:
            raise bad_request(f"expected some of {', '.join(sorted(allowed))}")
        try:
            sim.job(job_id)
            if "health" in data:
                sim.set_health(job_id, data["health"], data.get("code"), data.get("message"))
            if "executionStatus" in data:
                sim.set_execution(job_id, data["executionStatus"])
            if "totals" in data:
                sim.set_totals(job_id, data["totals"])
        except KeyError:
            raise ApiError(404, "NotFound", f"No simulated job {job_id!r}") from None
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return web.json_response(job_summary(sim.job(job_id), sim.clock()))

    async def delete_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        try:
            sim.remove_job(job_id)
        except KeyError:
            raise ApiError(404, "NotFound", f"No simulated job {job_id!r}") from None
        return web.json_response({"deleted": job_id})

    return [
        web.get("/_sim/stats", get_stats),
        web.post("/_sim/stats/reset", reset_stats),
        web.get("/_sim/faults", get_faults),
        web.post("/_sim/faults", set_faults),
        web.get("/_sim/jobs", list_jobs),
        web.post("/_sim/jobs", add_jobs),
        web.post("/_sim/jobs/{job_id}", change_job),
        web.delete("/_sim/jobs/{job_id}", delete_job),
    ]
