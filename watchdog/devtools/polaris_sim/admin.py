"""The ``/_sim/`` admin routes: control and observe a running simulator over HTTP.

``make demo``, the benchmarks (the simulator in a child process) and the chaos test use
these to add and change jobs, set faults and read request statistics. They need no API
key and faults never touch them, so a broken API stays controllable. Every route
addresses one project with a ``project`` query parameter (its id); without it, the
first project. ``GET /_sim/projects`` lists the projects.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from watchdog.devtools.polaris_sim.answers import ApiError, bad_request, read_json_object
from watchdog.devtools.polaris_sim.jobs import SimJob
from watchdog.devtools.polaris_sim.project import ProjectDirectory, SimProject

log = structlog.get_logger(__name__)


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


def admin_routes(directory: ProjectDirectory) -> list[web.RouteDef]:
    """The unauthenticated ``/_sim/`` routes over every project of ``directory``."""

    def chosen(request: web.Request) -> SimProject:
        project_id = request.query.get("project")
        try:
            return directory.project(project_id)
        except KeyError:
            known = ", ".join(p.project_id for p in directory.projects)
            raise ApiError(
                404, "NotFound", f"No simulated project {project_id!r}; projects: {known}"
            ) from None

    async def list_projects(request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "id": project.project_id,
                    "api_key": project.api_key,
                    "readonly_keys": list(project.readonly_keys),
                    "scenarios": project.scenarios,
                    "jobs": len(project.jobs),
                    "requests": project.stats.requests,
                }
                for project in directory.projects
            ]
        )

    async def get_stats(request: web.Request) -> web.Response:
        project = chosen(request)
        try:
            limit = int(request.query.get("log", "100"))
        except ValueError:
            raise bad_request("log must be an integer") from None
        return web.json_response(project.stats.to_json(limit))

    async def reset_stats(request: web.Request) -> web.Response:
        project = chosen(request)
        project.stats.reset()
        return web.json_response(project.stats.to_json(0))

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(chosen(request).faults.to_json())

    async def set_faults(request: web.Request) -> web.Response:
        project = chosen(request)
        data = await read_json_object(request)
        try:
            project.set_faults(data)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        log.info("sim.faults_set", project_id=project.project_id, faults=data)
        return web.json_response(project.faults.to_json())

    async def list_jobs(request: web.Request) -> web.Response:
        project = chosen(request)
        now = directory.clock()
        return web.json_response([job_summary(job, now) for job in project.jobs])

    async def add_jobs(request: web.Request) -> web.Response:
        project = chosen(request)
        data = await read_json_object(request)
        count = data.pop("count", 1)
        allowed = {"type", "behaviour", "table", "cycle", "max_parse_exceptions", "connection"}
        if set(data) - allowed or not isinstance(count, int) or not 0 <= count <= 100_000:
            raise bad_request(
                f"expected count (0..100000) and some of {', '.join(sorted(allowed))}"
            )
        try:
            # add_job checks everything before adding, so a bad setting adds nothing.
            ids = [project.add_job(**data).id for _ in range(count)]
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return web.json_response({"ids": ids})

    async def change_job(request: web.Request) -> web.Response:
        project = chosen(request)
        job_id = request.match_info["job_id"]
        data = await read_json_object(request)
        allowed = {"health", "code", "message", "executionStatus", "totals"}
        if set(data) - allowed:
            raise bad_request(f"expected some of {', '.join(sorted(allowed))}")
        try:
            project.job(job_id)
            if "health" in data:
                project.set_health(job_id, data["health"], data.get("code"), data.get("message"))
            if "executionStatus" in data:
                project.set_execution(job_id, data["executionStatus"])
            if "totals" in data:
                project.set_totals(job_id, data["totals"])
        except KeyError:
            raise ApiError(404, "NotFound", f"No simulated job {job_id!r}") from None
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return web.json_response(job_summary(project.job(job_id), directory.clock()))

    async def delete_job(request: web.Request) -> web.Response:
        project = chosen(request)
        job_id = request.match_info["job_id"]
        try:
            project.remove_job(job_id)
        except KeyError:
            raise ApiError(404, "NotFound", f"No simulated job {job_id!r}") from None
        return web.json_response({"deleted": job_id})

    return [
        web.get("/_sim/projects", list_projects),
        web.get("/_sim/stats", get_stats),
        web.post("/_sim/stats/reset", reset_stats),
        web.get("/_sim/faults", get_faults),
        web.post("/_sim/faults", set_faults),
        web.get("/_sim/jobs", list_jobs),
        web.post("/_sim/jobs", add_jobs),
        web.post("/_sim/jobs/{job_id}", change_job),
        web.delete("/_sim/jobs/{job_id}", delete_job),
    ]
