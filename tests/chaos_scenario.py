"""The chaos timeline: error windows on a known schedule, faults injected one after another.

Each phase opens error windows (one expected incident each) around one kind of trouble —
Polaris answering 503 for a stretch, a 429 storm, hangs that become timeouts, malformed
bodies, Slack down for a stretch, Slack 429s, SIGKILL between ticks, SIGKILL with a
notification queued while Slack is down (restarting while it still is), SIGTERM in the
middle of a slow tick, SIGTERM while a Slack post is in flight — and closes them only
once the bot had a successful tick to see them, so every window is observable however
slow the machine. ``scale`` stretches the faults (the test runs at 1,
``bench/chaos.py`` longer); the waits for conditions have generous timeouts instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from chaos_accounting import META_MARK, ChaosReport, account, is_resolved
from chaos_harness import ChaosRig, ChaosTimeout, Window

#: Seconds after a window closed in which its post may still arrive (it may have waited
#: out a Slack outage and a restart). Each window has a job of its own, so a re-fire
#: inside the grace still shows, as a duplicate.
GRACE = 30.0


@dataclass(frozen=True)
class Timing:
    """How long faults last (scaled), and how long to wait for things (not scaled down)."""

    scale: float = 1.0
    patience: float = 30.0  # seconds to wait for any one condition before giving up

    def stretch(self, seconds: float) -> float:
        return seconds * self.scale

    def count(self, n: int) -> int:
        return max(1, round(n * self.scale))


async def _hold(seconds: float) -> None:
    # The fault's duration itself: the point is to let time pass with the fault on.
    await asyncio.sleep(seconds)


def posted(rig: ChaosRig, window: Window) -> bool:
    """Slack holds a top-level post naming the window's job."""
    return any(window.job_id in m.text for m in rig.standin.top_level())


async def observe(rig: ChaosRig, t: Timing) -> None:
    """Two successful ticks: the second one started after every change made so far."""
    await rig.wait_ok_ticks(2, t.patience)


async def wait_posted(rig: ChaosRig, window: Window, t: Timing) -> None:
    await rig.wait_until(lambda: posted(rig, window), t.patience, f"the post for {window.note}")


async def clean(rig: ChaosRig, t: Timing) -> None:
    window = rig.open_window("no fault")
    await observe(rig, t)
    rig.close_window(window)


async def polaris_outage(rig: ChaosRig, t: Timing) -> None:
    """503 for a stretch ("a minute"): one window spans it and closes inside it, one opens
    inside it. Neither may resolve or re-fire because data went missing."""
    before = rig.open_window("fires before a Polaris 503 stretch, clears during it")
    await observe(rig, t)
    await wait_posted(rig, before, t)
    fault = rig.polaris_fault("503 stretch", error_status=503, retry_after=0.2)
    during = rig.open_window("opens during a Polaris 503 stretch")
    await _hold(t.stretch(1.5))
    rig.close_window(before)
    await _hold(t.stretch(1.5))
    rig.polaris_clear(fault)
    await observe(rig, t)
    rig.close_window(during)


async def polaris_rate_limited(rig: ChaosRig, t: Timing) -> None:
    window = rig.open_window("Polaris 429 storm with Retry-After")
    fault = rig.polaris_fault("429 storm", rate_limit_count=t.count(6), retry_after=0.3)
    await rig.wait_until(
        lambda: rig.sim.faults.rate_limit_count == 0, t.patience, "the 429 storm to pass"
    )
    rig.polaris_clear(fault)
    await observe(rig, t)
    rig.close_window(window)


async def polaris_hangs(rig: ChaosRig, t: Timing) -> None:
    """Requests that hang past the bot's timeout: each is a timeout, retried."""
    window = rig.open_window("Polaris hangs (timeouts)")
    fault = rig.polaris_fault("hangs (timeouts)", hang=1.5, hang_count=t.count(4))
    await rig.wait_until(lambda: rig.sim.faults.hang == 0, t.patience, "the hangs to pass")
    rig.polaris_clear(fault)
    await observe(rig, t)
    rig.close_window(window)


async def polaris_malformed(rig: ChaosRig, t: Timing) -> None:
    window = rig.open_window("Polaris malformed bodies")
    for kind in ("html", "truncated", "types"):
        fault = rig.polaris_fault(f"malformed {kind}", malformed=kind, malformed_count=t.count(1))
        await rig.wait_until(
            lambda: rig.sim.faults.malformed is None, t.patience, f"the {kind} answers to pass"
        )
        rig.polaris_clear(fault)
    await observe(rig, t)
    rig.close_window(window)


async def slack_outage(rig: ChaosRig, t: Timing) -> None:
    """Slack answers 503 for a stretch: posts and resolves wait in the outbox."""
    before = rig.open_window("fires before a Slack outage, resolves during it")
    await wait_posted(rig, before, t)
    fault = rig.slack_down()
    rig.close_window(before)
    inside = rig.open_window("fires and resolves during a Slack outage")
    await observe(rig, t)
    rig.close_window(inside)
    after = rig.open_window("fires during a Slack outage, resolves after it")
    await observe(rig, t)
    await _hold(t.stretch(2.0))
    rig.slack_up(fault)
    await wait_posted(rig, after, t)
    rig.close_window(after)


async def slack_rate_limited(rig: ChaosRig, t: Timing) -> None:
    window = rig.open_window("Slack 429s")
    await rig.slack_rate_limit(t.count(3), 1, t.patience)
    await observe(rig, t)
    rig.close_window(window)


async def sigkill_between_ticks(rig: ChaosRig, t: Timing) -> None:
    """SIGKILL when nothing is being delivered; the state file must carry the alerts over."""
    fired = rig.open_window("fires, then SIGKILL; resolves while the bot is down")
    await wait_posted(rig, fired, t)
    await rig.wait_until(_outbox_empty(rig), t.patience, "the outbox to empty")
    await rig.kill("between ticks")
    rig.close_window(fired)
    opened = rig.open_window("opens while the bot is down after SIGKILL")
    await _hold(t.stretch(1.0))  # the restart gap
    await rig.restart()
    await observe(rig, t)
    rig.close_window(opened)


async def sigkill_with_queue(rig: ChaosRig, t: Timing) -> None:
    """SIGKILL while a post waits for Slack, restart while Slack is still down."""
    fault = rig.slack_down()
    queued = rig.open_window("queued for a down Slack when SIGKILLed")
    await observe(rig, t)
    await rig.wait_until(_outbox_nonempty(rig), t.patience, "the post to wait in the outbox")
    await rig.kill("with a post queued, Slack down")
    crashes = len(rig.record.crashes)
    await rig.restart(healthy=False)

    async def up_or_crashed() -> bool:
        return len(rig.record.crashes) > crashes or await rig.is_healthy()

    # The bot must come up and watch while Slack is still down; if it crashed instead, the
    # supervisor keeps restarting it and the verdict reports the crash.
    await rig.wait_until(up_or_crashed, t.patience, "the restarted bot to come up or crash")
    later = rig.open_window("opens after a restart while Slack is down")
    if len(rig.record.crashes) == crashes:
        await observe(rig, t)  # seen, and queued, with Slack still down
    await _hold(t.stretch(1.0))
    rig.slack_up(fault)
    await rig.wait_healthy()
    await observe(rig, t)
    rig.close_window(queued)
    rig.close_window(later)


async def sigterm_mid_tick(rig: ChaosRig, t: Timing) -> None:
    """SIGTERM while a slow tick is in flight: drain and exit 0 within 10 s."""
    window = rig.open_window("SIGTERM mid-tick")
    await observe(rig, t)
    fault = rig.polaris_fault("latency (slow ticks)", latency=0.6)
    await rig.wait_in_flight(t.patience)
    await rig.terminate("mid-tick")
    rig.polaris_clear(fault)
    await rig.restart()
    rig.close_window(window)
    await observe(rig, t)


#: The note of the window whose post is in flight at a SIGTERM (see the test of that).
POST_IN_FLIGHT = "SIGTERM while its Slack post is in flight"


async def sigterm_mid_post(rig: ChaosRig, t: Timing) -> None:
    """SIGTERM while a chat.postMessage is in flight (Slack is slow): post it once."""
    fault = rig.slack_slow(0.5)
    sent = len(rig.standin.calls_of("chat.postMessage"))
    window = rig.open_window(POST_IN_FLIGHT)
    await rig.wait_until(
        lambda: len(rig.standin.calls_of("chat.postMessage")) > sent,
        t.patience,
        "a post to be in flight",
    )
    await rig.terminate("a Slack post in flight")
    rig.slack_fast(fault)
    await rig.restart()
    await observe(rig, t)
    rig.close_window(window)


PHASES = (
    clean,
    polaris_outage,
    polaris_rate_limited,
    polaris_hangs,
    polaris_malformed,
    slack_outage,
    slack_rate_limited,
    sigkill_between_ticks,
    sigkill_with_queue,
    sigterm_mid_tick,
    sigterm_mid_post,
)


def _outbox_empty(rig: ChaosRig) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await rig.outbox_size() == 0

    return check


def _outbox_nonempty(rig: ChaosRig) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        size = await rig.outbox_size()
        return size is not None and size > 0

    return check


def settled(rig: ChaosRig) -> bool:
    """Every window closed, posted and resolved; every meta-alert resolved."""
    top = rig.standin.top_level()
    for window in rig.record.windows:
        mine = [m for m in top if window.job_id in m.text]
        if window.closed is None or not any(is_resolved(m) for m in mine):
            return False
    return all(is_resolved(m) for m in top if META_MARK in m.text)


async def run_scenario(rig: ChaosRig, t: Timing) -> None:
    """Every phase, then wait for the bot to deliver what it owes and note the outbox."""
    for phase in PHASES:
        await phase(rig, t)
    try:
        await rig.wait_until(lambda: settled(rig), t.patience, "every incident to resolve")
        await rig.wait_until(_outbox_empty(rig), t.patience, "the outbox to empty")
    except ChaosTimeout:
        pass  # what is missing is the verdict's to report, not a reason to stop here
    rig.record.outbox_at_end = await rig.outbox_size()


async def run_chaos(workdir: Path, t: Timing, *, grace: float = GRACE) -> ChaosReport:
    """A whole chaos run in ``workdir`` (state file and one log per bot start), and its verdict."""
    async with ChaosRig(workdir) as rig:
        await run_scenario(rig, t)
    messages = list(rig.standin.messages.values())
    return account(rig.record, messages, controls=rig.controls, grace=grace)
