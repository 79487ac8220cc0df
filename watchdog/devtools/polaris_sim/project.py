"""One simulated Polaris project: its id, API keys, jobs, faults and statistics.

A :class:`SimProject` is everything the simulator knows about one project and nothing
about HTTP. The API (:mod:`~watchdog.devtools.polaris_sim.http`) and the admin routes
(:mod:`~watchdog.devtools.polaris_sim.admin`) reach projects through the small
:class:`ProjectDirectory` protocol, which the simulator (one organisation at one base
URL, :mod:`~watchdog.devtools.polaris_sim.simulator`) implements. Every project has its
own job ids, faults and request statistics, so tests can break one project and prove
another unaffected.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from watchdog.devtools.polaris_sim.answers import compact, job_json
from watchdog.devtools.polaris_sim.faults import EVERY_JOB, Faults
from watchdog.devtools.polaris_sim.hostile import PhantomJobs
from watchdog.devtools.polaris_sim.jobs import (
    BEHAVIOURS,
    BUDGET_LIMIT,
    TROUBLE_WINDOW,
    SimJob,
    natural_type,
)
from watchdog.devtools.polaris_sim.scenarios import populate
from watchdog.devtools.polaris_sim.stats import SimStats
from watchdog.polaris.models import (
    EXECUTION_STATUSES,
    HEALTH_STATUSES,
    JOB_TYPES,
    KNOWN_METRICS,
    UNLIMITED_PARSE_EXCEPTIONS,
)

_PHANTOM_TEMPLATE_ID = "00000000-0000-4000-8000-000000000000"


class SimProject:
    """One project's jobs, keys, faults and stats; jobs evolve with the shared clock."""

    def __init__(
        self,
        *,
        project_id: str,
        api_key: str,
        readonly_keys: Iterable[str] = (),
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        if not project_id or "/" in project_id:
            raise ValueError(f"a project id must be a non-empty path segment, not {project_id!r}")
        if not api_key:
            raise ValueError("a project needs an API key")
        self.project_id = project_id
        self.api_key = api_key
        self.readonly_keys = tuple(readonly_keys)
        self.clock = clock
        self.faults = Faults()
        self.stats = SimStats()
        self._rng = rng
        self._jobs: dict[str, SimJob] = {}
        self._order: list[SimJob] = []  # creation order: stable pages for offset pagination
        user_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._creator = {"username": "api-key-pok_simulator", "userId": user_id}
        self._phantoms: PhantomJobs | None = None
        self.scenarios: list[str] = []  # the named scenarios added, in order

    def __repr__(self) -> str:
        return f"<SimProject {self.project_id} with {len(self._order)} jobs>"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key that opens this project: the API key first, then the read-only ones."""
        return (self.api_key, *self.readonly_keys)

    # -- jobs -------------------------------------------------------------------------
    def _make_job(
        self,
        *,
        job_id: str,
        job_type: str,
        table: str,
        behaviour: str,
        cycle: float,
        window: tuple[float, float],
        max_parse_exceptions: int,
        connection: str | None,
    ) -> SimJob:
        return SimJob(
            job_id=job_id,
            type=job_type,
            table=table,
            behaviour=behaviour,
            cycle=cycle,
            trouble=window,
            max_parse_exceptions=max_parse_exceptions,
            connection=connection or f"kafka-{table}",
            rate=self._rng.uniform(50.0, 500.0),
            variant=self._rng.randrange(1_000),
            creator=self._creator,
            clock=self.clock,
        )

    def add_job(
        self,
        *,
        type: str | None = None,
        table: str = "events",
        behaviour: str = "healthy",
        cycle: float = 90.0,
        max_parse_exceptions: int | None = None,
        job_id: str | None = None,
        connection: str | None = None,
        trouble: tuple[float, float] | None = None,
    ) -> SimJob:
        """Add a job that behaves as ``behaviour`` from now on.

        ``type`` defaults to the behaviour's natural type (batch for ``batch_fails``,
        else streaming); ``trouble`` is the (start, end) of the trouble window within each
        ``cycle`` in seconds, by default 15 s to 50 s of a 90 s cycle, scaled.
        """
        job_type = type or natural_type(behaviour)
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; valid: {', '.join(BEHAVIOURS)}")
        if job_type not in JOB_TYPES:
            raise ValueError(f"unknown job type {job_type!r}; valid: {', '.join(JOB_TYPES)}")
        if behaviour == "batch_fails" and job_type == "streaming":
            raise ValueError("batch_fails needs a non-streaming job type")
        if cycle <= 0:
            raise ValueError("cycle must be positive")
        window = trouble or (cycle * TROUBLE_WINDOW[0], cycle * TROUBLE_WINDOW[1])
        if not 0 <= window[0] < window[1] <= cycle:
            raise ValueError("trouble must be a (start, end) window within the cycle")
        # Draw from the seeded generator even when an id is given, so ids stay stable.
        generated = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        job_id = job_id or generated
        if job_id in self._jobs or job_id == EVERY_JOB:
            raise ValueError(f"a job with id {job_id!r} exists already")
        if max_parse_exceptions is None:
            budget = behaviour == "budget"
            max_parse_exceptions = BUDGET_LIMIT if budget else UNLIMITED_PARSE_EXCEPTIONS
        job = self._make_job(
            job_id=job_id,
            job_type=job_type,
            table=table,
            behaviour=behaviour,
            cycle=cycle,
            window=window,
            max_parse_exceptions=max_parse_exceptions,
            connection=connection,
        )
        self._jobs[job_id] = job
        self._order.append(job)
        return job

    def add_scenario(
        self,
        name: str,
        *,
        jobs: int | None = None,
        cycle: float = 90.0,
        storm_at: float = 30.0,
        storm_for: float = 60.0,
    ) -> None:
        """Add the jobs of scenario ``name`` (ValueError names the valid scenarios)."""
        populate(self.add_job, name, jobs=jobs, cycle=cycle, storm_at=storm_at, storm_for=storm_for)
        self.scenarios.append(name)

    def job(self, job_id: str) -> SimJob:
        """The job with this id; KeyError when there is none."""
        return self._jobs[job_id]

    def remove_job(self, job_id: str) -> None:
        """Delete a job, as someone deleting it in Polaris would (GET → 404); KeyError if
        there is none."""
        job = self._jobs.pop(job_id)
        self._order.remove(job)

    @property
    def jobs(self) -> list[SimJob]:
        """Every job, in creation order (the order listings page through)."""
        return list(self._order)

    def set_health(
        self, job_id: str, status: str, code: str | None = None, message: str | None = None
    ) -> None:
        """Pin a job's health (it no longer follows its behaviour)."""
        if status not in HEALTH_STATUSES:
            raise ValueError(f"health must be one of {', '.join(HEALTH_STATUSES)}")
        if status == "ok":
            code = message = None
        else:
            code = code or ("internal_error" if status == "error" else "unable_to_proceed")
            message = message or f"Health set to {status} by the simulator"
        self.job(job_id).set_health(status, code, message, self.clock())

    def set_execution(self, job_id: str, status: str) -> None:
        """Pin a job's execution status; its counters grow only while it is running."""
        if status not in EXECUTION_STATUSES:
            raise ValueError(f"executionStatus must be one of {', '.join(EXECUTION_STATUSES)}")
        self.job(job_id).set_execution(status, self.clock())

    def set_totals(self, job_id: str, totals: Mapping[str, float]) -> None:
        """Set some counters; they keep growing from there."""
        if not isinstance(totals, Mapping) or not all(
            name in KNOWN_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
            for name, v in totals.items()
        ):
            raise ValueError(f"totals must map some of {', '.join(KNOWN_METRICS)} to numbers")
        self.job(job_id).reset_counters(self.clock(), dict(totals))

    # -- faults -----------------------------------------------------------------------
    def set_faults(self, data: Mapping[str, Any]) -> None:
        """Replace this project's faults (``{}`` clears them); ValueError, and nothing
        changes, when a setting is invalid or names a job the project does not have."""
        for name in ("hostile_metrics", "bad_timestamps"):
            chosen = data.get(name)
            if isinstance(chosen, Mapping):
                unknown = sorted(str(j) for j in chosen if j != EVERY_JOB and j not in self._jobs)
                if unknown:
                    raise ValueError(f"{name} names jobs this project does not have: {unknown}")
        self.faults.configure(data)

    def phantoms(self) -> PhantomJobs:
        """Jobs this project does not have, for listings that never end or never fit."""
        if self._phantoms is None:
            # A job that is never added: drawing from a separate generator keeps the ids
            # of the project's real jobs the same whether or not a phantom was needed.
            template = SimJob(
                job_id=_PHANTOM_TEMPLATE_ID,
                type="streaming",
                table="phantom",
                behaviour="healthy",
                cycle=90.0,
                trouble=(15.0, 50.0),
                max_parse_exceptions=UNLIMITED_PARSE_EXCEPTIONS,
                connection="kafka-phantom",
                rate=100.0,
                variant=0,
                creator=self._creator,
                clock=self.clock,
            )
            body = compact(job_json(template, template.view(self.clock())))
            self._phantoms = PhantomJobs(body, _PHANTOM_TEMPLATE_ID, self.project_id)
        return self._phantoms


class ProjectDirectory(Protocol):
    """The projects one simulated Polaris organisation serves at one base URL."""

    @property
    def projects(self) -> Sequence[SimProject]:
        """Every project; the first is the default one."""

    @property
    def strays(self) -> SimStats:
        """Requests that named no project of this organisation."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def sleep(self) -> Callable[[float], Awaitable[None]]: ...

    def project(self, project_id: str | None = None) -> SimProject:
        """The project with this id (None: the default one); KeyError when there is none."""
