"""One listing tick of one project, up to its judgement: observe, hand targets over, judge.

:func:`judge_tick` is the part of a tick that ``test-rules`` and the watch loop share, in two
phases. First the rules that need only listings (health, execution) are judged on their
own listings — usually one short page, such as the jobs in error — and handed over at
once: the loop commits them, so an unhealthy job is announced without waiting for the long
listings metric rules need (every streaming job, page after page). Then the metric rules'
listings name the jobs the sweep must watch, and the metric rules are judged with the
samples at hand. The loop then adds the meta-alert and commits
(:mod:`watchdog.watch.loop`); ``test-rules`` adopts each tally as it comes. Metrics never
hold a tick up: the sweep fetches them on its own cadence, and a rule judges the newest
fresh samples with their real timestamps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from watchdog.domain.alerts import AlertState
from watchdog.domain.oncall import Ack
from watchdog.polaris.api import PolarisApi
from watchdog.rules.maintenance import MaintenanceWindow
from watchdog.rules.model import Rule
from watchdog.rules.tables import WatchSettings
from watchdog.store import Silence
from watchdog.watch.judge import Tally, judge_rules
from watchdog.watch.observe import Observation, observe
from watchdog.watch.plan import Plan, plan
from watchdog.watch.sweep import MetricsSweep


@dataclass(frozen=True)
class TickContext:
    """What a tick judges with: the project, its rules (split by what they read, each part
    with its own listings), the watch settings and the maintenance windows."""

    project: str
    rules: Sequence[Rule]
    watch: WatchSettings
    channel: str | None  # the project's alert channel, if it has its own
    windows: Sequence[MaintenanceWindow]
    listing_rules: Sequence[Rule]
    listing_plan: Plan
    metric_rules: Sequence[Rule]
    metric_plan: Plan

    @classmethod
    def planned(
        cls,
        project: str,
        rules: Sequence[Rule],
        watch: WatchSettings,
        channel: str | None = None,
        windows: Sequence[MaintenanceWindow] = (),
    ) -> TickContext:
        """The context with its listings planned (near-linear in the rules, but long for
        thousands: the loop calls this off the event loop)."""
        listing = tuple(rule for rule in rules if not rule.metrics)
        metric = tuple(rule for rule in rules if rule.metrics)
        return cls(
            project, rules, watch, channel, windows, listing, plan(listing), metric, plan(metric)
        )


@dataclass
class TickReport:
    """What one tick did, for logs and metrics."""

    now: float
    seconds: float = 0.0
    jobs: int = 0
    listings_failed: int = 0
    lookups: int = 0
    evaluations: int = 0
    targets: int = 0
    notifications: Counter[str] = field(default_factory=Counter)
    firing: int = 0

    @property
    def outcome(self) -> str:
        return "partial" if self.listings_failed else "ok"


async def judge_tick(
    api: PolarisApi,
    context: TickContext,
    sweep: MetricsSweep,
    alerts: dict[str, AlertState],
    silences: Sequence[Silence],
    now: float,
    *,
    acks: Collection[Ack] = (),
    listings_judged: Callable[[Tally], Awaitable[object]] | None = None,
    before_judging: Callable[[], Awaitable[object]] | None = None,
) -> tuple[Tally, Observation]:
    """Observe Polaris at ``now`` and judge every rule, with the silences, the
    acknowledgements and the context's maintenance windows; nothing is written.

    ``listings_judged`` gets the tally of the listing-only rules as soon as it is decided
    (the loop commits it there); the metric rules' tally, returned, starts from its
    states. ``before_judging`` runs between the metric rules' listings and their
    judgement: ``test-rules`` fetches the tick's metrics there, as if the sweep had just
    visited every job.
    """
    deadline = asyncio.get_running_loop().time() + context.watch.tick_deadline

    def new_tally(states: dict[str, AlertState]) -> Tally:
        return Tally(
            dict(states),
            silences,
            now,
            context.project,
            context.channel,
            acks=acks,
            windows=context.windows,
        )

    async def look(
        rules: Sequence[Rule], rules_plan: Plan, states: dict[str, AlertState]
    ) -> Observation:
        by_rule: dict[str, list[str]] = {}
        for state in states.values():
            by_rule.setdefault(state.rule, []).append(state.job_id)
        return await observe(
            api,
            rules,
            rules_plan,
            context.watch,
            now,
            by_rule,
            deadline=deadline,
            listings=len(context.listing_plan.queries) + len(context.metric_plan.queries),
        )

    first = new_tally(alerts)
    listed = await look(context.listing_rules, context.listing_plan, alerts)
    await judge_rules(first, context.listing_rules, context.listing_plan, listed, sweep.book, {})
    first.resolve_removed({rule.name for rule in context.rules})
    if listings_judged is not None:
        await listings_judged(first)
    tally = new_tally(first.alerts)
    tally.evaluations = first.evaluations
    measured = await look(context.metric_rules, context.metric_plan, first.alerts)
    sweep.set_targets(measured.targets, now)
    if before_judging is not None:
        await before_judging()
    sampled = fresh(sweep, now, context.watch)
    await judge_rules(
        tally, context.metric_rules, context.metric_plan, measured, sweep.book, sampled
    )
    return tally, listed.merged(measured)


def fresh(sweep: MetricsSweep, now: float, watch: WatchSettings) -> dict[str, float]:
    """When each target's metrics were fetched, for the targets whose data is fresh: no
    older than ``no_data_after`` (older data is unknown, and the sweep's lag is reported)."""
    oldest = now - watch.no_data_after
    return {
        job_id: at
        for job_id in sweep.targets
        if (at := sweep.sampled_at(job_id)) is not None and at >= oldest
    }
