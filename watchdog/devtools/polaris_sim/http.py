"""The Polaris Jobs v1 HTTP API of the simulator: routes, auth, handlers (aiohttp).

Same paths, filters, pagination, status rules and error bodies as Polaris' Jobs v1 API
as Imply documents it, for every project of a :class:`~.project.ProjectDirectory` under
``/v1/projects/{projectId}``. One middleware wraps every API request: it finds the
project the path names, counts the request in that project's statistics (with the key
it carried), applies that project's faults, checks the API key and turns errors into
Polaris' ``{code, message}`` body. The ``/_sim/`` admin routes bypass all of that.

A key opens only its own project: another project's key is refused with 403, as a
Polaris key without access to a project is; a key nobody issued is refused with 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import NamedTuple

import structlog
from aiohttp import web

from watchdog.devtools.polaris_sim import hostile
from watchdog.devtools.polaris_sim.answers import (
    ApiError,
    bad_request,
    compact,
    job_json,
    listing,
    read_json_object,
)
from watchdog.devtools.polaris_sim.jobs import JobView, SimJob, StatusRefused
from watchdog.devtools.polaris_sim.project import ProjectDirectory, SimProject
from watchdog.devtools.polaris_sim.stats import key_label
from watchdog.polaris.models import (
    DESIRED_STATUSES,
    EXECUTION_STATUSES,
    HEALTH_STATUSES,
    JOB_TYPES,
)

log = structlog.get_logger(__name__)

_PREFIX = "/v1/projects/{project_id}"
_DEFAULT_LIMIT, _MAX_LIMIT = 100, 1000
_READ_METHODS = frozenset({"GET", "HEAD"})
_MEGABYTE = 1_000_000


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


def _path_project(path: str) -> str | None:
    """The project id a (decoded) path names, if it is under ``/v1/projects/``."""
    parts = path.split("/", 4)
    if len(parts) >= 4 and parts[1] == "v1" and parts[2] == "projects" and parts[3]:
        return parts[3]
    return None


class Caller(NamedTuple):
    """Who a request says it is: the key it carried (as :func:`key_label` records it),
    the project that key belongs to and whether the key may change jobs."""

    label: str
    owner: SimProject | None
    writable: bool


class PolarisApi:
    """The request handlers over every project of one simulated organisation."""

    def __init__(self, directory: ProjectDirectory) -> None:
        self.directory = directory
        self._kinds: dict[tuple[str, str], str] = {}
        # Listings are the hot path: a job's JSON is re-encoded only when its view changed.
        # Keyed by the job itself, so a removed job's entry goes with it.
        self._encoded: weakref.WeakKeyDictionary[SimJob, tuple[JobView, bytes]] = (
            weakref.WeakKeyDictionary()
        )

    def app(self) -> web.Application:
        """The API routes; requests under ``/_sim/`` pass the middleware untouched."""
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
        return app

    def _kind(self, request: web.Request) -> str:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        return self._kinds.get((request.method, canonical), "other")

    def _named_project(self, request: web.Request) -> SimProject | None:
        project_id = _path_project(request.path)
        if project_id is None:
            return None
        try:
            return self.directory.project(project_id)
        except KeyError:
            return None

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
        project = self._named_project(request)
        caller = self._caller(request)
        stats = project.stats if project is not None else self.directory.strays
        path = request.raw_path.partition("?")[0]  # as sent: what reached the server
        stats.begin(kind, request.method, path, request.query_string, caller.label)
        try:
            if project is not None:
                injected = await project.faults.before(kind, self.directory.sleep)
                if injected is not None:
                    return injected
            self._authorize(request, project, caller)
            response = await handler(request)
            if project is None:
                return response
            response = project.faults.after(kind, response)
            return await self._stream_hostile(request, kind, project, response)
        except ApiError as exc:
            return exc.response()
        except web.HTTPException as exc:  # the router's 404 and 405, in Polaris' shape
            return ApiError(exc.status, exc.reason.replace(" ", ""), exc.reason).response()
        finally:
            stats.end()

    def _caller(self, request: web.Request) -> Caller:
        """Accept ``Basic <key>`` and ``Basic base64(key:)``, the docs' and the SDK's way."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        candidates = [credential.strip()]
        try:
            decoded = base64.b64decode(candidates[0], validate=True).decode()
            if decoded.endswith(":"):
                candidates.append(decoded[:-1])
        except (binascii.Error, UnicodeDecodeError):
            pass
        for project in self.directory.projects:
            for key in project.keys:
                for candidate in candidates:
                    if hmac.compare_digest(candidate.encode(), key.encode()):
                        if scheme.lower() != "basic":
                            return Caller(key, None, False)
                        return Caller(key, project, key == project.api_key)
        known = (key for project in self.directory.projects for key in project.keys)
        return Caller(key_label(candidates[0], known), None, False)

    def _authorize(self, request: web.Request, project: SimProject | None, caller: Caller) -> None:
        """401 without a key this organisation issued; 403 for another project's key or
        a read-only key asking for a change."""
        if caller.owner is None:
            raise ApiError(401, "Unauthorized", "Missing or invalid API key")
        if project is None:
            if _path_project(request.path) is not None:
                raise ApiError(404, "NotFound", "Project not found")
            return  # not a project path: the router answers 404
        if caller.owner is not project:
            raise ApiError(
                403, "Forbidden", f"This API key has no access to project {project.project_id}"
            )
        if not caller.writable and request.method not in _READ_METHODS:
            raise ApiError(403, "Forbidden", "This API key lacks ManageIngestionJobs permission")

    async def _stream_hostile(
        self, request: web.Request, kind: str, project: SimProject, response: web.StreamResponse
    ) -> web.StreamResponse:
        """A successful answer made many megabytes long, or trickled, when faults say so."""
        faults = project.faults
        if not (faults.huge_mb > 0 or faults.trickle > 0) or not faults.affects(kind):
            return response
        if response.status != 200 or not isinstance(response, web.Response):
            return response
        body = response.body
        if not isinstance(body, bytes):
            return response
        chunks: Iterable[bytes] = (body,)
        length: int | None = len(body)
        if faults.huge_mb > 0:
            size = int(faults.huge_mb * _MEGABYTE)
            if kind == "list":
                chunks = hostile.huge_listing(project.phantoms(), size)
            else:
                chunks = hostile.padded(body, size)
            length = None
        return await hostile.send(
            request,
            chunks,
            pause=faults.trickle,
            piece=faults.trickle_bytes,
            sleep=self.directory.sleep,
            length=length,
        )

    def _project(self, request: web.Request) -> SimProject:
        try:
            return self.directory.project(request.match_info["project_id"])
        except KeyError:
            raise ApiError(404, "NotFound", "Project not found") from None

    def _job(self, request: web.Request) -> tuple[SimProject, SimJob]:
        project = self._project(request)
        job_id = request.match_info["job_id"]
        try:
            return project, project.job(job_id)
        except KeyError:
            raise ApiError(404, "NotFound", f"Job {job_id} not found") from None

    def _encode(self, project: SimProject, job: SimJob, view: JobView) -> bytes:
        spoiled = project.faults.timestamps_for(job.id)
        if spoiled is not None:
            return compact(hostile.spoil_timestamps(job_json(job, view), spoiled))
        cached = self._encoded.get(job)
        if cached is None or cached[0] != view:
            cached = self._encoded[job] = (view, compact(job_json(job, view)))
        return cached[1]

    def _job_response(self, project: SimProject, job: SimJob) -> web.Response:
        body = self._encode(project, job, job.view(self.directory.clock()))
        return web.Response(body=body, content_type="application/json")

    @staticmethod
    def _choices(request: web.Request, name: str, valid: Iterable[str]) -> frozenset[str]:
        chosen = frozenset(request.query.getall(name, ()))
        if not chosen <= frozenset(valid):
            raise bad_request(f"{name} must be one of {', '.join(valid)}")
        return chosen

    async def _list(self, request: web.Request) -> web.Response:
        project = self._project(request)
        query = request.query
        healths = self._choices(request, "healthStatus", HEALTH_STATUSES)
        statuses = self._choices(request, "executionStatus", EXECUTION_STATUSES)
        types = self._choices(request, "type", JOB_TYPES)
        connections = frozenset(query.getall("connectionName", ()))
        table = query.get("targetTableName")
        search = query.get("searchString", "").lower()
        limit = _int_param(query, "paginationLimit", _DEFAULT_LIMIT, 1, _MAX_LIMIT)
        offset = _int_param(query, "paginationOffset", 0, 0, 2**31 - 1)
        endless = project.faults.endless
        if endless == "new":
            body = listing(project.phantoms().take(limit), more=True)
            return web.Response(body=body, content_type="application/json")
        if endless == "repeat":
            offset = 0  # the first page, whatever was asked, and always "more"
        now = self.directory.clock()
        page: list[bytes] = []
        matched, more = 0, endless == "repeat"
        for job in project.jobs:
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
                page.append(self._encode(project, job, view))
            matched += 1
        body = listing(page, more)
        return web.Response(body=body, content_type="application/json")

    async def _get_job(self, request: web.Request) -> web.Response:
        return self._job_response(*self._job(request))

    async def _get_status(self, request: web.Request) -> web.Response:
        view = self._job(request)[1].view(self.directory.clock())
        return web.json_response({"executionStatus": view.execution_status})

    async def _set_status(self, request: web.Request) -> web.Response:
        project, job = self._job(request)
        body = await read_json_object(request)
        desired = body.get("desiredExecutionStatus")
        if desired not in DESIRED_STATUSES:
            raise bad_request(
                f"desiredExecutionStatus must be one of {', '.join(DESIRED_STATUSES)}"
            )
        try:
            job.request_status(desired, self.directory.clock())
        except StatusRefused as exc:
            raise bad_request(str(exc)) from None
        project.stats.status_changes.append((job.id, desired))
        log.info(
            "sim.status_changed", project_id=project.project_id, job_id=job.id, desired=desired
        )
        return self._job_response(project, job)

    async def _metrics(self, request: web.Request) -> web.Response:
        project, job = self._job(request)
        totals = job.totals_at(self.directory.clock())
        spoiled = project.faults.metrics_for(job.id)
        if spoiled is not None:
            body = hostile.hostile_totals(totals, spoiled)
            return web.Response(body=body, content_type="application/json")
        return web.json_response({"totals": totals})

    async def _logs(self, request: web.Request) -> web.Response:
        job = self._job(request)[1]
        return web.json_response({"logs": job.logs_at(self.directory.clock())})

    async def _progress(self, request: web.Request) -> web.Response:
        progress = self._job(request)[1].progress_at(self.directory.clock())
        return web.json_response({"overallProgress": progress})

    async def _reset(self, request: web.Request) -> web.Response:
        project, job = self._job(request)
        if not job.streaming:
            raise bad_request("Only streaming jobs can be reset")
        job.reset_counters(self.directory.clock())
        log.info("sim.job_reset", project_id=project.project_id, job_id=job.id)
        return self._job_response(project, job)
