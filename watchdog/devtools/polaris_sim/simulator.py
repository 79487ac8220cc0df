"""A stand-in for Imply Polaris' Jobs v1 API, served by aiohttp: one organisation, any
number of projects.

``polaris-watchdog simulate``, ``make demo``, the tests (in process, through aiohttp's test
server), the benchmarks and the chaos test all talk to this instead of a real Polaris.
A :class:`Simulator` is one organisation at one base URL; it composes the pieces:

- :mod:`~watchdog.devtools.polaris_sim.project` — each project's id, keys, jobs, faults
  and stats (jobs from :mod:`~watchdog.devtools.polaris_sim.jobs`, named job sets from
  :mod:`~watchdog.devtools.polaris_sim.scenarios`);
- :mod:`~watchdog.devtools.polaris_sim.http` — the Polaris API under
  ``/v1/projects/{projectId}``, where a key opens its own project only;
- :mod:`~watchdog.devtools.polaris_sim.admin` — the ``/_sim/`` admin routes.

Projects of one organisation share a base URL; two organisations are two simulators on
two servers. The first project is the default one: ``Simulator(...)`` with the one-project
arguments, ``sim.add_job``, ``sim.faults``, ``sim.stats`` and friends all act on it.

Time comes from an injected clock and jobs evolve when a request arrives, so a test moves
a fake clock instead of sleeping. Only injected latency, hangs and trickles take real time.
"""

from __future__ import annotations

import asyncio
import json
import random
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import structlog
from aiohttp import web

from watchdog.devtools.polaris_sim.admin import admin_routes
from watchdog.devtools.polaris_sim.faults import Faults
from watchdog.devtools.polaris_sim.http import PolarisApi
from watchdog.devtools.polaris_sim.jobs import SimJob
from watchdog.devtools.polaris_sim.project import SimProject
from watchdog.devtools.polaris_sim.scenarios import SCENARIOS
from watchdog.devtools.polaris_sim.stats import SimStats

__all__ = [
    "SCENARIOS",
    "Faults",
    "SimJob",
    "SimProject",
    "SimStats",
    "Simulator",
    "build_projects",
    "build_scenario",
    "project_settings",
    "serve",
]

log = structlog.get_logger(__name__)


class Simulator:
    """One simulated Polaris organisation: its projects, and the aiohttp app serving them.

    The constructor makes the first (default) project; :meth:`add_project` adds more.
    """

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
        self.clock = clock
        self.seed = seed
        self.sleep = sleep  # injectable so tests can see latency without waiting for it
        self.strays = SimStats()  # requests that named no project of this organisation
        self._projects: dict[str, SimProject] = {}
        # The first project draws from the plain seed, so its job ids are what a
        # one-project simulator always gave for that seed.
        self.default = self._add(project_id, api_key, readonly_keys, random.Random(seed))

    # -- projects ---------------------------------------------------------------------
    @property
    def projects(self) -> list[SimProject]:
        """Every project, the default one first."""
        return list(self._projects.values())

    def project(self, project_id: str | None = None) -> SimProject:
        """The project with this id (None: the default one); KeyError when there is none."""
        return self.default if project_id is None else self._projects[project_id]

    def add_project(
        self,
        *,
        project_id: str | None = None,
        api_key: str | None = None,
        readonly_keys: Iterable[str] = (),
    ) -> SimProject:
        """Another project of this organisation, by default ``<first id>-N`` with key
        ``<first key>-N``; ValueError when the id or a key is taken."""
        number = len(self._projects) + 1
        project_id = project_id or f"{self.default.project_id}-{number}"
        api_key = api_key or f"{self.default.api_key}-{number}"
        rng = random.Random(f"{self.seed}:{project_id}")
        return self._add(project_id, api_key, readonly_keys, rng)

    def _add(
        self, project_id: str, api_key: str, readonly_keys: Iterable[str], rng: random.Random
    ) -> SimProject:
        project = SimProject(
            project_id=project_id,
            api_key=api_key,
            readonly_keys=readonly_keys,
            clock=self.clock,
            rng=rng,
        )
        if project_id in self._projects:
            raise ValueError(f"a project with id {project_id!r} exists already")
        taken = {key for other in self._projects.values() for key in other.keys}
        if taken & set(project.keys) or len(set(project.keys)) != len(project.keys):
            # A key opens one project: the API tells projects apart by the key.
            raise ValueError(f"project {project_id!r} needs keys no other project has")
        self._projects[project_id] = project
        return project

    # -- the default project, as the one-project simulator had it -------------------------
    @property
    def project_id(self) -> str:
        return self.default.project_id

    @property
    def api_key(self) -> str:
        return self.default.api_key

    @api_key.setter
    def api_key(self, key: str) -> None:
        """Rotate the default project's key, as an operator would in Polaris."""
        self._check_free(key)
        self.default.api_key = key

    @property
    def readonly_keys(self) -> tuple[str, ...]:
        return self.default.readonly_keys

    @readonly_keys.setter
    def readonly_keys(self, keys: Iterable[str]) -> None:
        keys = tuple(keys)
        self._check_free(*keys)
        self.default.readonly_keys = keys

    def _check_free(self, *keys: str) -> None:
        """ValueError unless every key is non-empty and no project but the default has it."""
        others = {key for other in self.projects[1:] for key in other.keys}
        if not all(keys) or others & set(keys):
            raise ValueError("a key must be non-empty and open one project only")

    @property
    def faults(self) -> Faults:
        return self.default.faults

    @property
    def stats(self) -> SimStats:
        return self.default.stats

    @property
    def jobs(self) -> list[SimJob]:
        """The default project's jobs, in creation order."""
        return self.default.jobs

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
        """Add a job to the default project (see :meth:`SimProject.add_job`)."""
        return self.default.add_job(
            type=type,
            table=table,
            behaviour=behaviour,
            cycle=cycle,
            max_parse_exceptions=max_parse_exceptions,
            job_id=job_id,
            connection=connection,
            trouble=trouble,
        )

    def job(self, job_id: str) -> SimJob:
        return self.default.job(job_id)

    def remove_job(self, job_id: str) -> None:
        self.default.remove_job(job_id)

    def set_health(
        self, job_id: str, status: str, code: str | None = None, message: str | None = None
    ) -> None:
        self.default.set_health(job_id, status, code, message)

    def set_execution(self, job_id: str, status: str) -> None:
        self.default.set_execution(job_id, status)

    def set_totals(self, job_id: str, totals: Mapping[str, float]) -> None:
        self.default.set_totals(job_id, totals)

    # -- serving ------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The Polaris API under ``/v1/projects/{id}`` and the ``/_sim/`` admin routes."""
        app = PolarisApi(self).app()
        app.add_routes(admin_routes(self))
        return app


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
    """A one-project simulator holding scenario ``name`` (one of SCENARIOS; ValueError
    otherwise)."""
    sim = Simulator(
        project_id=project_id,
        api_key=api_key,
        readonly_keys=readonly_keys,
        clock=clock,
        seed=seed,
        sleep=sleep,
    )
    sim.default.add_scenario(name, jobs=jobs, cycle=cycle, storm_at=storm_at, storm_for=storm_for)
    return sim


def build_projects(
    scenarios: Sequence[str],
    *,
    projects: int | None = None,
    jobs: int | None = None,
    clock: Callable[[], float] = time.time,
    seed: int = 0,
    cycle: float = 90.0,
) -> Simulator:
    """A simulator of ``projects`` projects (default: one per scenario) with default ids
    and keys; project N holds ``scenarios[N]``, those past the list ``healthy``.

    ValueError for an unknown scenario, fewer than one project, or more scenarios than
    projects.
    """
    count = len(scenarios) if projects is None else projects
    if count < 1:
        raise ValueError(f"projects must be at least 1, not {count}")
    if len(scenarios) > count:
        raise ValueError(
            f"more scenarios ({len(scenarios)}) than projects ({count}): "
            "at most one scenario per project"
        )
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        raise ValueError(
            f"unknown scenario {unknown[0]!r}; valid scenarios: {', '.join(SCENARIOS)}"
        )
    sim = Simulator(clock=clock, seed=seed)
    for index in range(count):
        project = sim.default if index == 0 else sim.add_project()
        name = scenarios[index] if index < len(scenarios) else "healthy"
        project.add_scenario(name, jobs=jobs, cycle=cycle)
    return sim


def project_settings(sim: Simulator, url: str, names: Sequence[str] = ()) -> str:
    """How to point the watchdog at every project of ``sim`` served at ``url``: a
    ``[[projects]]`` block per project for the rules file, then the ``export`` lines
    for the keys their ``api_key_env`` names. Projects are named ``names``, else
    ``sim1``, ``sim2``, …"""
    blocks, exports = [], []
    for index, project in enumerate(sim.projects):
        name = names[index] if index < len(names) else f"sim{index + 1}"
        env = "POLARIS_API_KEY_" + "".join(c if c.isalnum() else "_" for c in name.upper())
        # JSON strings are TOML basic strings for everything a URL, id or name holds.
        blocks.append(
            "[[projects]]\n"
            f"name = {json.dumps(name)}\n"
            f"url = {json.dumps(url)}\n"
            f"id = {json.dumps(project.project_id)}\n"
            f"api_key_env = {json.dumps(env)}\n"
        )
        exports.append(f"export {env}={shlex.quote(project.api_key)}")
    return "\n".join(blocks) + "\n" + "\n".join(exports) + "\n"


async def serve(sim: Simulator, host: str, port: int) -> web.AppRunner:
    """Start serving ``sim`` on host:port (0 picks a free port); the caller cleans up."""
    runner = web.AppRunner(sim.app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info(
        "sim.serving",
        url=site.name,
        projects=[project.project_id for project in sim.projects],
        jobs=sum(len(project.jobs) for project in sim.projects),
    )
    return runner
