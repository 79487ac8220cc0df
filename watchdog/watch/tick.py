"""One listing tick of one project, up to its judgement: observe, hand targets over, judge.

:func:`judge_tick` is the part of a tick that ``test-rules`` and the watch loop share: list
the jobs the rules can match, look up the alerting jobs that left their listing, hand the
jobs metric rules watch to the sweep, and judge every rule with the samples at hand. The
loop then adds the meta-alerts and commits (:mod:`watchdog.watch.loop`); ``test-rules``
adopts the tally as it is. Metrics never hold a tick up: the sweep fetches them on its own
cadence, and a rule judges the newest fresh samples with their real timestamps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from watchdog.domain.alerts import AlertState
from watchdog.domain.oncall import Ack
from watchdog.polaris.api import PolarisApi
from watchdog.rules.maintenance import MaintenanceWindow
from watchdog.rules.model import Rule
from watchdog.rules.tables import WatchSettings
from watchdog.store import Silence
from watchdog.watch.judge import Tally, judge_rules
from watchdog.watch.observe import Observation, observe
from watchdog.watch.plan import Plan
from watchdog.watch.sweep import MetricsSweep


@dataclass(frozen=True)
class TickContext:
    """What a tick judges with: the project, its rules, the watch settings and the
    maintenance windows."""

    project: str
    rules: Sequence[Rule]
    plan: Plan
    watch: WatchSettings
    channel: str | None = None  # the project's alert channel, if it has its own
    windows: Sequence[MaintenanceWindow] = ()


async def judge_tick(
    api: PolarisApi,
    context: TickContext,
    sweep: MetricsSweep,
    alerts: dict[str, AlertState],
    silences: Sequence[Silence],
    now: float,
    *,
    acks: Collection[Ack] = (),
    before_judging: Callable[[], Awaitable[object]] | None = None,
) -> tuple[Tally, Observation]:
    """Observe Polaris at ``now`` and judge every rule, with the silences, the
    acknowledgements and the context's maintenance windows; nothing is written.

    ``before_judging`` runs between the listings and the judgement: ``test-rules`` fetches
    the tick's metrics there, as if the sweep had just visited every job.
    """
    by_rule: dict[str, list[str]] = {}
    for state in alerts.values():
        by_rule.setdefault(state.rule, []).append(state.job_id)
    deadline = asyncio.get_running_loop().time() + context.watch.tick_deadline
    seen = await observe(
        api, context.rules, context.plan, context.watch, now, by_rule, deadline=deadline
    )
    sweep.set_targets(seen.targets, now)
    if before_judging is not None:
        await before_judging()
    tally = Tally(
        dict(alerts),
        silences,
        now,
        context.project,
        context.channel,
        acks=acks,
        windows=context.windows,
    )
    await judge_rules(
        tally, context.rules, context.plan, seen, sweep.book, fresh(sweep, now, context.watch)
    )
    return tally, seen


def fresh(sweep: MetricsSweep, now: float, watch: WatchSettings) -> dict[str, float]:
    """When each target's metrics were fetched, for the targets whose data is fresh: no
    older than ``no_data_after`` (older data is unknown, and the sweep's lag is reported)."""
    oldest = now - watch.no_data_after
    return {
        job_id: at
        for job_id in sweep.targets
        if (at := sweep.sampled_at(job_id)) is not None and at >= oldest
    }
