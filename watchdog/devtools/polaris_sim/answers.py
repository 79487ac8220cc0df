"""What the simulator's answers look like: the job JSON and Polaris' error body.

Shared by the Polaris API (:mod:`~watchdog.devtools.polaris_sim.http`), the hostile
answers that imitate it (:mod:`~watchdog.devtools.polaris_sim.hostile`) and the ``/_sim/``
admin routes, so every one of them speaks the same shapes without importing the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from watchdog.devtools.polaris_sim.jobs import JobView, SimJob, iso
from watchdog.polaris.models import TERMINAL_STATUSES


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


def compact(data: Any) -> bytes:
    """JSON without spaces, as the listing's hot path and the hostile answers write it."""
    return json.dumps(data, separators=(",", ":")).encode()


#: What follows a listing's jobs: ``moreResultsAvailable`` and its value come next.
LISTING_TAIL = b'],"moreResultsAvailable":'


def listing(jobs: Iterable[bytes], more: bool) -> bytes:
    """A ``GET /jobs`` body from already encoded jobs."""
    return b'{"values":[' + b",".join(jobs) + LISTING_TAIL + (b"true}" if more else b"false}")


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
