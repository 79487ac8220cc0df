"""The named scenarios of the Polaris simulator (``polaris-watchdog simulate --scenario``).

Each scenario is a list of jobs with behaviours (see :mod:`watchdog.devtools.polaris_sim.jobs`):
``demo``
(nine jobs, most healthy, one of each kind of trouble an alert is for; with the default
90 s cycle the trouble starts at 15 s and clears at 50 s of each cycle, which suits a 5 s
poll), ``healthy`` (N healthy streaming jobs), ``storm`` (N streaming jobs that all turn
unhealthy at ``storm_at`` and recover ``storm_for`` seconds later), ``large`` (N jobs,
default 5,000: mostly healthy streaming, 3 % in error, 10 % batch) and ``empty``.
"""

from __future__ import annotations

from typing import Protocol

SCENARIOS: tuple[str, ...] = ("demo", "healthy", "storm", "large", "empty")
_DEFAULT_JOBS = {"healthy": 10, "storm": 50, "large": 5000}
#: The demo: mostly healthy jobs, and one of each kind of trouble worth an alert.
_DEMO: tuple[tuple[str, str, str | None], ...] = (
    ("clickstream", "healthy", None),
    ("orders", "healthy", None),
    ("page_views", "healthy", None),
    ("backfill_2024", "healthy", "batch"),
    ("billing_events", "restart", None),
    ("payments", "recovers", None),
    ("app_logs", "skips_rising", None),
    ("daily_import", "batch_fails", None),
    ("partner_feed", "budget", None),
)


class JobAdder(Protocol):
    """``Simulator.add_job`` as the scenarios use it."""

    def __call__(
        self,
        *,
        type: str | None = ...,
        table: str = ...,
        behaviour: str = ...,
        cycle: float = ...,
        trouble: tuple[float, float] | None = ...,
    ) -> object: ...


def populate(
    add: JobAdder,
    name: str,
    *,
    jobs: int | None = None,
    cycle: float = 90.0,
    storm_at: float = 30.0,
    storm_for: float = 60.0,
) -> None:
    """Add the jobs of scenario ``name``; ValueError names the valid scenarios."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; valid scenarios: {', '.join(SCENARIOS)}")
    count = _DEFAULT_JOBS.get(name, 0) if jobs is None else jobs
    if count < 0:
        raise ValueError(f"jobs must be >= 0, not {count}")
    if name == "demo":
        for table, behaviour, type in _DEMO:
            add(type=type, table=table, behaviour=behaviour, cycle=cycle)
    elif name == "healthy":
        for index in range(count):
            add(table=f"events_{index:03d}", cycle=cycle)
    elif name == "storm":
        # One storm per run: the cycle is far longer than anyone watches a storm.
        once = storm_at + storm_for + 86_400.0
        for index in range(count):
            window = (storm_at, storm_at + storm_for)
            add(table=f"events_{index:03d}", behaviour="recovers", cycle=once, trouble=window)
    elif name == "large":
        for index in range(count):
            table = f"table_{index % 250:03d}"
            if index % 100 < 3:
                add(table=table, behaviour="static_error", cycle=cycle)
            elif index % 10 == 5:
                # Batch runs of different lengths, so some complete while others run.
                add(type="batch", table=table, cycle=cycle * (1 + index % 7))
            else:
                add(table=table, cycle=cycle)
