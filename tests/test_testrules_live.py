"""test-rules and the live loop are one implementation: every example case, replayed by
``test-rules`` and by a real :class:`~watchdog.watch.loop.Watcher` committing to a store, ends
every tick with the same alerts in the same phases and the same notifications. The live
loop gets a case's on-call parts the way it gets them in production: its maintenance
windows in the rules, its acknowledgements in the store, its start on the clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import FakeClock, lead

from watchdog.domain.alerts import DEFAULT_PROJECT, META_RULE, Phase
from watchdog.domain.outgoing import Notification
from watchdog.rules.holder import RulesHolder
from watchdog.rules.load import load_ruleset
from watchdog.store.memory import MemoryStore
from watchdog.testing.file import CaseSpec, load_test_file
from watchdog.testing.polaris import CasePolaris
from watchdog.testing.run import CaseAcks, CaseRun
from watchdog.watch.loop import Watcher

ROOT = Path(__file__).resolve().parent.parent
TESTS = load_test_file(ROOT / "rules.example.test.toml")
RULES = load_ruleset(TESTS.rules)

State = tuple[dict[str, Phase], frozenset[str]]


def _interval(case: CaseSpec) -> float:
    return case.interval or TESTS.interval or RULES.watch.interval


def _ticks(case: CaseSpec) -> int:
    return round(max(expect.at for expect in case.expect) / _interval(case)) + 1


async def _replayed(case: CaseSpec) -> list[State]:
    """What test-rules sees after each tick: phases by fingerprint, notifications."""
    run = CaseRun(case, RULES, _interval(case))
    states: list[State] = []
    for _ in range(_ticks(case)):
        snapshot = await run.tick()
        phases = {state.fingerprint: state.phase for state in run.alerts.values()}
        states.append((phases, snapshot.notified))
    return states


async def _live(case: CaseSpec) -> list[State]:
    """The same case through the live loop: a Watcher ticking over the case's jobs,
    committing to a store; its notifications are read back from the outbox."""
    interval = _interval(case)
    rules = RulesHolder(RULES.model_copy(update={"watch": RULES.watch.model_copy(
        update={"interval": interval}), "maintenance": (*RULES.maintenance,
        *case.maintenance)}))  # fmt: skip
    start = CaseRun(case, RULES, interval).start
    clock = FakeClock(start)
    store = MemoryStore(clock=clock)
    await store.open()
    polaris = CasePolaris(case.job, start)
    operator = CaseAcks(case, start)
    watcher = Watcher(
        project=DEFAULT_PROJECT, client=polaris, store=store, rules=rules, clock=clock
    )
    names = {job.id: job.name for job in case.job}
    await lead(watcher, store)
    states: list[State] = []
    seen: set[int] = set()
    for tick in range(_ticks(case)):
        clock.now = start + tick * interval
        polaris.move_to(tick, clock.now)
        firing = {
            f"{state.rule}/{names[state.job_id]}": state
            for state in watcher.alerts.values()
            if state.phase is Phase.FIRING and state.rule != META_RULE
        }
        made, withdrawn = operator.due(clock.now, firing)
        for ack in made:
            await store.add_ack(ack)
        for incident in withdrawn:
            await store.remove_ack(incident)
        await watcher.tick(clock.now, before_judging=watcher.sweep.sweep_once)
        phases = {
            fp: state.phase for fp, state in watcher.alerts.items() if state.rule != META_RULE
        }
        notified = set()
        for record in await store.outbox_due(clock.now + 1, 10_000):
            if record.id in seen or not isinstance(record.item, Notification):
                continue
            seen.add(record.id)
            alert = record.item.alert
            if alert.rule != META_RULE:
                notified.add(f"{record.item.reason.value}:{alert.rule}/{names[alert.job_id]}")
        states.append((phases, frozenset(notified)))
    await store.close()
    return states


@pytest.mark.parametrize("case", TESTS.cases, ids=[case.name for case in TESTS.cases])
async def test_a_case_and_the_live_loop_reach_the_same_alerts(case: CaseSpec) -> None:
    """Tick by tick, the same fingerprints in the same phases, the same notifications."""
    replayed, live = await _replayed(case), await _live(case)
    for tick, (expected, got) in enumerate(zip(replayed, live, strict=True)):
        assert got == expected, f"tick {tick} ({tick * _interval(case):g}s) differs"
