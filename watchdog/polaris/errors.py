"""The small typed error hierarchy of the Polaris client.

Callers branch on the class: the watch loop keeps ticking on :class:`PolarisUnavailable`
and raises a meta-alert on :class:`PolarisAuthError`; the Slack commands turn each class
into a plain sentence. ``transient`` says whether the client retries it.
:func:`error_for_status` turns an HTTP error answer into the right class, with Polaris'
own message when the body carries one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import ValidationError

from watchdog.errors import InputError, WatchdogError
from watchdog.polaris.models import ApiErrorBody

_JOB_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class InvalidJobIdError(InputError, ValueError):
    """A job id that is not a UUID: refused before any request is made."""

    def __init__(self, job_id: str) -> None:
        shown = job_id if len(job_id) <= 60 else job_id[:57] + "..."
        super().__init__(f"not a job id: {shown!r} (job ids are UUIDs)")
        self.job_id = job_id


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` when it is a UUID; raise :class:`InvalidJobIdError` otherwise.

    Job ids go into URL paths, so nothing a user typed may reach one unchecked: a UUID
    has no ``/``, ``..``, ``?`` or ``%`` that could change the path.
    """
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InvalidJobIdError(str(job_id))
    return job_id.lower()


def is_job_id(text: str) -> bool:
    return bool(_JOB_ID.fullmatch(text))


class PolarisError(WatchdogError):
    """Any failure talking to Polaris. ``endpoint`` is a label such as ``list_jobs``."""

    transient = False

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class PolarisAuthError(PolarisError):
    """401/403: the key is wrong, revoked, or lacks a permission."""


class PolarisNotFoundError(PolarisError):
    """404: no such job (or project)."""


class PolarisBadRequestError(PolarisError):
    """400/409/415: Polaris refused the request; the message says why."""


class PolarisRateLimitedError(PolarisError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.retry_after = retry_after


class PolarisUnavailableError(PolarisError):
    """5xx, timeouts, connection failures. 502/503/504 and network errors are transient."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        transient: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.transient = transient
        self.retry_after = retry_after


class PolarisMalformedError(PolarisError):
    """An answer that is not the JSON the API documents (HTML, truncated, wrong types,
    larger than any real answer)."""


class PolarisListingIncompleteError(PolarisError):
    """A listing that did not end within the page cap (or the tick's deadline): the jobs
    it would have listed are unknown, never "gone"."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: rare for APIs; fall back to our own backoff
    return max(seconds, 0.0)


def _detail(item: object) -> str:
    """One entry of an error body's ``details``: its message, after its target if any."""
    if isinstance(item, Mapping):
        message, target = item.get("message"), item.get("target")
        text = str(message) if message else str(item.get("code") or "")
        return f"{target}: {text}" if target and text else text
    return str(item) if item is not None else ""


def _explain(status: int, body: str) -> str:
    """Polaris' own message, with the reasons its ``details`` give, when the body carries
    them, else a short excerpt."""
    try:
        parsed = ApiErrorBody.model_validate_json(body)
        details = "; ".join(filter(None, map(_detail, parsed.details or [])))
        if parsed.message or details:
            joined = " — ".join(filter(None, (parsed.message, details)))
            return joined[:500]
    except ValidationError:
        pass
    excerpt = " ".join(body.split())[:200]
    return excerpt or f"HTTP {status}"


def error_for_status(
    status: int, body: str, headers: Mapping[str, str], endpoint: str
) -> PolarisError:
    """The typed error for an HTTP error answer of ``endpoint``."""
    message = _explain(status, body)
    if status in (401, 403):
        why = (
            "the API key was rejected (wrong or revoked)"
            if status == 401
            else "the API key lacks a permission (ManageIngestionJobs is needed to change jobs)"
        )
        return PolarisAuthError(f"{why}: {message}", endpoint=endpoint, status=status)
    if status == 404:
        return PolarisNotFoundError(message, endpoint=endpoint, status=status)
    if status == 429:
        return PolarisRateLimitedError(
            f"rate limited by Polaris: {message}",
            endpoint=endpoint,
            retry_after=_retry_after(headers),
        )
    if status >= 500:
        return PolarisUnavailableError(
            f"Polaris answered {status}: {message}",
            endpoint=endpoint,
            status=status,
            transient=status in (502, 503, 504),
            retry_after=_retry_after(headers),
        )
    return PolarisBadRequestError(message, endpoint=endpoint, status=status)
