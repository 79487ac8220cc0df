"""The digest: what the incident history says about a stretch of time, as one value.

:func:`summarize` is pure: incidents (:class:`~watchdog.domain.oncall.Incident`) and a
time span in, a :class:`Digest` out — counts by rule, project and table, how many still
fire, how many were acknowledged, the median times to acknowledge and to resolve, and the
noisiest jobs. The daily post and ``/polaris digest`` both show one; the daily one waits
in the outbox as JSON (:func:`digest_to_dict` / :func:`digest_from_dict`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from watchdog.domain.alerts import META_JOB
from watchdog.domain.oncall import Incident

#: Jobs listed as the noisiest.
NOISIEST = 5
NO_TABLE = "(no table)"

Counts = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class NoisyJob:
    project: str
    job_id: str
    table: str | None
    incidents: int


@dataclass(frozen=True, slots=True)
class Digest:
    """The incidents that fired in ``[since, until)``, and those still firing at ``until``."""

    since: float
    until: float
    incidents: int
    by_rule: Counts = ()
    by_project: Counts = ()
    by_table: Counts = ()
    #: incidents open at ``until``, whenever they fired
    still_firing: int = 0
    acknowledged: int = 0
    resolved: int = 0
    #: medians in seconds, over the incidents of the span that were acknowledged / resolved
    median_ack: float | None = None
    median_resolve: float | None = None
    noisiest: tuple[NoisyJob, ...] = ()


def _counts(values: Iterable[str]) -> Counts:
    """Most first; ties by name, so the order is stable."""
    return tuple(sorted(Counter(values).items(), key=lambda item: (-item[1], item[0])))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(incidents: Iterable[Incident], since: float, until: float) -> Digest:
    """The digest of ``incidents`` over ``[since, until)``."""
    every = list(incidents)
    span = [i for i in every if since <= i.fired_at < until]
    acked = [i for i in span if i.acked_at is not None and i.acked_at < until]
    resolved = [i for i in span if i.resolved_at is not None and i.resolved_at < until]
    open_ = [
        i for i in every if i.fired_at < until and (i.resolved_at is None or i.resolved_at >= until)
    ]
    jobs = Counter((i.project, i.job_id) for i in span if i.job_id != META_JOB)
    tables = {(i.project, i.job_id): i.table for i in span}
    noisiest = sorted(jobs.items(), key=lambda item: (-item[1], item[0]))[:NOISIEST]
    return Digest(
        since=since,
        until=until,
        incidents=len(span),
        by_rule=_counts(i.rule for i in span),
        by_project=_counts(i.project for i in span),
        by_table=_counts(i.table or NO_TABLE for i in span),
        still_firing=len(open_),
        acknowledged=len(acked),
        resolved=len(resolved),
        median_ack=_median([max(0.0, (i.acked_at or 0.0) - i.fired_at) for i in acked]),
        median_resolve=_median([max(0.0, (i.resolved_at or 0.0) - i.fired_at) for i in resolved]),
        noisiest=tuple(
            NoisyJob(project, job, tables[(project, job)], count)
            for (project, job), count in noisiest
        ),
    )


def digest_to_dict(digest: Digest) -> dict[str, Any]:
    return asdict(digest)


def digest_from_dict(raw: dict[str, Any]) -> Digest:
    """Inverse of :func:`digest_to_dict` (or of its JSON); ``TypeError``/``KeyError`` when
    ``raw`` is not one."""
    data = dict(raw)
    for key in ("by_rule", "by_project", "by_table"):
        data[key] = tuple((str(name), int(count)) for name, count in data.get(key, ()))
    data["noisiest"] = tuple(NoisyJob(**job) for job in data.get("noisiest", ()))
    return Digest(**data)
