"""The Polaris Jobs v1 HTTP API of the simulator: routes, auth, handlers (aiohttp).

Same paths, filters, pagination, status rules and error bodies as Polaris' Jobs v1 API
as Imply documents it. One middleware wraps every API request: it
counts the request, applies the injected faults, checks the API key and turns errors into
Polaris' ``{code, message}`` body. The ``/_sim/`` admin routes bypass all of that.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from watchdog.devtools.polaris_sim.faults import (
    ApiError,
    admin_routes,
    bad_request,
    read_json_object,
)
from watchdog.devtools.polaris_sim.jobs import JobView, SimJob, StatusRefused, iso
from watchdog.polaris.models import (
    DESIRED_STATUSES,
    EXECUTION_STATUSES,
    HEALTH_STATUSES,
    JOB_TYPES,
    TERMINAL_STATUSES,
)

if TYPE_CHECKING:
    from watchdog.devtools.polaris_sim.simulator import Simulator

log = structlog.get_logger(__name__)

_PREFIX = "/v1/projects/{project_id}"
_DEFAULT_LIMIT, _MAX_LIMIT = 100, 1000
_READ_METHODS = frozenset({"GET", "HEAD"})


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, not {value}")
    return value


def job_json(job: SimJob, view: JobView) -> dict[str, Any]:
    """The job as ``GET /jobs/{id}`` and the listing show it, for ``view``."""
    health: dict[str, Any] = {"status": view.health_status}
    if view.health_status != "ok":
        health["code"] = view.health_code
        if view.health_status == "error":
            health["message"] = view.health_message
        health["log"] = job.log_entry(
            view.health_since, view.health_status, view.health_code, view.health_message
        )
    source: dict[str, Any] = {"type": "s3"}
    if job.streaming:
        source = {"type": "connection", "connectionName": job.connection}
    data: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "executionStatus": view.execution_status,
        "desiredExecutionStatus": view.desired,
        "health": health,
        "target": {"type": "table", "tableName": job.table, "intervals": None},
        "source": source,
        "createdBy": job.creator,
        "lastModifiedBy": job.creator,
        "createdTimestamp": iso(job.born),
        "lastUpdatedTimestamp": iso(job.born + view.updated),
        "startedTimestamp": None if view.execution_status == "pending" else iso(job.born),
        "maxParseExceptions": job.max_parse_exceptions,
    }
    if view.execution_status in TERMINAL_STATUSES:
        data["completedTimestamp"] = iso(job.born + view.status_since)
    return data


def build_app(sim: Simulator) -> web.Application:
    """The Polaris API under ``/v1/projects/{id}`` and the ``/_sim/`` admin routes."""
    return PolarisApi(sim).app()


class PolarisApi:
    """The request handlers over one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._kinds: dict[tuple[str, str], str] = {}
        self._encoded: dict[str, tuple[JobView, bytes]] = {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        job = _PREFIX + "/jobs/{job_id}"
        api = [
            ("GET", _PREFIX + "/jobs", "list", self._list),
            ("GET", job, "job", self._get_job),
            ("PUT", job, "set_status", self._set_status),
            ("GET", job + "/status", "status", self._get_status),
            ("POST", job + "/status", "set_status", self._set_status),
            ("GET", job + "/metrics", "metrics", self._metrics),
            ("GET", job + "/logs", "logs", self._logs),
            ("GET", job + "/progress", "progress", self._progress),
            ("POST", job + "/reset", "reset", self._reset),
        ]
        self._kinds = {(method, path): kind for method, path, kind, _ in api}
        app.add_routes([web.route(method, path, handler) for method, path, _, handler in api])
        app.add_routes(admin_routes(self.sim))
        return app

    def _kind(self, request: web.Request) -> str:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        return self._kinds.get((request.method, canonical), "other")

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
        kind = self._kind(request)
        path = request.raw_path.partition("?")[0]  # as sent: what reached the server
        self.sim.stats.begin(kind, request.method, path, request.query_string)
        try:
            injected = await self.sim.faults.before(kind, self.sim.sleep)
            if injected is not None:
                return injected
            self._authorize(request)
            return self.sim.faults.after(kind, await handler(request))
        except ApiError as exc:
            return exc.response()
        except web.HTTPException as exc:  # the router's 404 and 405, in Polaris' shape
            return ApiError(exc.status, exc.reason.replace(" ", ""), exc.reason).response()
        finally:
            self.sim.stats.end()

    def _authorize(self, request: web.Request) -> None:
        """Accept ``Basic <key>`` and ``Basic base64(key:)``; read-only keys cannot write."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        candidates = [credential.strip()]
        try:
            decoded = base64.b64decode(candidates[0], validate=True).decode()
            if decoded.endswith(":"):
                candidates.append(decoded[:-1])
        except (binascii.Error, UnicodeDecodeError):
            pass
        key = next(
            (
                key
                for key in (self.sim.api_key, *self.sim.readonly_keys)
                for candidate in candidates
                if hmac.compare_digest(candidate.encode(), key.encode())
            ),
            None,
        )
        if scheme.lower() != "basic" or key is None:
            raise ApiError(401, "Unauthorized", "Missing or invalid API key")
        if key != self.sim.api_key and request.method not in _READ_METHODS:
            raise ApiError(403, "Forbidden", "This API key lacks ManageIngestionJobs permission")

    def _project(self, request: web.Request) -> None:
        if request.match_info["project_id"] != self.sim.project_id:
            raise ApiError(404, "NotFound", "Project not found")

    def _job(self, request: web.Request) -> SimJob:
        self._project(request)
        job_id = request.match_info["job_id"]
        try:
            return self.sim.job(job_id)
        except KeyError:
            raise ApiError(404, "NotFound", f"Job {job_id} not found") from None

    def _encode(self, job: SimJob, view: JobView) -> bytes:
        # Listings are the hot path: a job's JSON is re-encoded only when its view changed.
        cached = self._encoded.get(job.id)
        if cached is None or cached[0] != view:
            body = json.dumps(job_json(job, view), separators=(",", ":")).encode()
            cached = self._encoded[job.id] = (view, body)
        return cached[1]

    def _job_response(self, job: SimJob) -> web.Response:
        body = self._encode(job, job.view(self.sim.clock()))
        return web.Response(body=body, content_type="application/json")

    @staticmethod
    def _choices(request: web.Request, name: str, valid: Iterable[str]) -> frozenset[str]:
        chosen = frozenset(request.query.getall(name, ()))
        if not chosen <= frozenset(valid):
            raise bad_request(f"{name} must be one of {', '.join(valid)}")
        return chosen

    async def _list(self, request: web.Request) -> web.Response:
        self._project(request)
        query = request.query
        healths = self._choices(request, "healthStatus", HEALTH_STATUSES)
        statuses = self._choices(request, "executionStatus", EXECUTION_STATUSES)
        types = self._choices(request, "type", JOB_TYPES)
        connections = frozenset(query.getall("connectionName", ()))
        table = query.get("targetTableName")
        search = query.get("searchString", "").lower()
        limit = _int_param(query, "paginationLimit", _DEFAULT_LIMIT, 1, _MAX_LIMIT)
        offset = _int_param(query, "paginationOffset", 0, 0, 2**31 - 1)
        now = self.sim.clock()
        page: list[bytes] = []
        matched, more = 0, False
        for job in self.sim.jobs:
            if (types and job.type not in types) or (table is not None and job.table != table):
                continue
            if connections and not (job.streaming and job.connection in connections):
                continue
            if search and search not in job.id.lower() and search not in job.table.lower():
                continue
            view = job.view(now)
            if (healths and view.health_status not in healths) or (
                statuses and view.execution_status not in statuses
            ):
                continue
            if matched == offset + limit:
                more = True  # one match past the page is enough to know there is more
                break
            if matched >= offset:
                page.append(self._encode(job, view))
            matched += 1
        tail = b'],"moreResultsAvailable":' + (b"true}" if more else b"false}")
        body = b'{"values":[' + b",".join(page) + tail
        return web.Response(body=body, content_type="application/json")

    async def _get_job(self, request: web.Request) -> web.Response:
        return self._job_response(self._job(request))

    async def _get_status(self, request: web.Request) -> web.Response:
        view = self._job(request).view(self.sim.clock())
        return web.json_response({"executionStatus": view.execution_status})

    async def _set_status(self, request: web.Request) -> web.Response:
        job = self._job(request)
        body = await read_json_object(request)
        desired = body.get("desiredExecutionStatus")
        if desired not in DESIRED_STATUSES:
            raise bad_request(
                f"desiredExecutionStatus must be one of {', '.join(DESIRED_STATUSES)}"
            )
        try:
            job.request_status(desired, self.sim.clock())
        except StatusRefused as exc:
            raise bad_request(str(exc)) from None
        self.sim.stats.status_changes.append((job.id, desired))
        log.info("sim.status_changed", job_id=job.id, desired=desired)
        return self._job_response(job)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.json_response({"totals": self._job(request).totals_at(self.sim.clock())})

    async def _logs(self, request: web.Request) -> web.Response:
        return web.json_response({"logs": self._job(request).logs_at(self.sim.clock())})

    async def _progress(self, request: web.Request) -> web.Response:
        progress = self._job(request).progress_at(self.sim.clock())
        return web.json_response({"overallProgress": progress})

    async def _reset(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if not job.streaming:
            raise bad_request("Only streaming jobs can be reset")
        job.reset_counters(self.sim.clock())
        log.info("sim.job_reset", job_id=job.id)
        return self._job_response(job)
