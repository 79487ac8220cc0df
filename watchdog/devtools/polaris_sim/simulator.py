"""A stand-in for Imply Polaris' Jobs v1 API, served by aiohttp.

``polaris-watchdog simulate``, ``make demo``, the tests (in process, through aiohttp's test
server), the benchmarks and the chaos test all talk to this instead of a real Polaris.
It answers the same paths, filters, pagination, auth and errors as the real API
(:mod:`watchdog.devtools.polaris_sim.http`), with jobs whose behaviour over time comes from
:mod:`watchdog.devtools.polaris_sim.jobs`, named job sets from
:mod:`watchdog.devtools.polaris_sim.scenarios`, and faults,
statistics and the ``/_sim/`` admin routes from :mod:`watchdog.devtools.polaris_sim.faults`.

Time comes from an injected clock and jobs evolve when a request arrives, so a test moves
a fake clock instead of sleeping. Only injected latency and hangs take real time.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping

import structlog
from aiohttp import web

from watchdog.devtools.polaris_sim.faults import Faults, SimStats
from watchdog.devtools.polaris_sim.http import build_app
from watchdog.devtools.polaris_sim.jobs import (
    BEHAVIOURS,
    BUDGET_LIMIT,
    TROUBLE_WINDOW,
    SimJob,
    natural_type,
)
from watchdog.devtools.polaris_sim.scenarios import SCENARIOS, populate
from watchdog.polaris.models import (
    EXECUTION_STATUSES,
    HEALTH_STATUSES,
    JOB_TYPES,
    KNOWN_METRICS,
    UNLIMITED_PARSE_EXCEPTIONS,
)

__all__ = ["SCENARIOS", "Faults", "SimJob", "SimStats", "Simulator", "build_scenario", "serve"]

log = structlog.get_logger(__name__)


class Simulator:
    """The simulated Polaris project: its jobs, faults and stats, and the aiohttp app."""

    def __init__(
        self,
        *,
        project_id: str = "demo-project",
        api_key: str = "sim-key",
        readonly_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.project_id = project_id
        self.api_key = api_key
        self.faults = Faults()
        self.stats = SimStats()
        self.clock = clock
        self.readonly_keys = tuple(readonly_keys)
        self.sleep = sleep  # injectable so tests can see latency without waiting for it
        self._rng = random.Random(seed)
        self._jobs: dict[str, SimJob] = {}
        self._order: list[SimJob] = []  # creation order: stable pages for offset pagination
        user_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._creator = {"username": "api-key-pok_simulator", "userId": user_id}

    # -- the Python API ---------------------------------------------------------------
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
        if job_id in self._jobs:
            raise ValueError(f"a job with id {job_id!r} exists already")
        if max_parse_exceptions is None:
            budget = behaviour == "budget"
            max_parse_exceptions = BUDGET_LIMIT if budget else UNLIMITED_PARSE_EXCEPTIONS
        job = SimJob(
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
        self._jobs[job_id] = job
        self._order.append(job)
        return job

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

    def app(self) -> web.Application:
        """The Polaris API under ``/v1/projects/{id}`` and the ``/_sim/`` admin routes."""
        return build_app(self)


def build_scenario(
    name: str,
    *,
    jobs: int | None = None,
    clock: Callable[[], float] = time.time,
    seed: int = 0,
    api_key: str = "sim-key",
    project_id: str = "demo-project",
    readonly_keys: Iterable[str] = (),
    cycle: float = 90.0,
    storm_at: float = 30.0,
    storm_for: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Simulator:
    """A simulator holding scenario ``name`` (one of SCENARIOS; ValueError otherwise)."""
    sim = Simulator(
        project_id=project_id,
        api_key=api_key,
        readonly_keys=readonly_keys,
        clock=clock,
        seed=seed,
        sleep=sleep,
    )
    populate(sim.add_job, name, jobs=jobs, cycle=cycle, storm_at=storm_at, storm_for=storm_for)
    return sim


async def serve(sim: Simulator, host: str, port: int) -> web.AppRunner:
    """Start serving ``sim`` on host:port (0 picks a free port); the caller cleans up."""
    runner = web.AppRunner(sim.app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("sim.serving", url=site.name, project_id=sim.project_id, jobs=len(sim.jobs))
    return runner
