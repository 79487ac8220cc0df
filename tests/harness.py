"""Shared test rigs: the Polaris simulator and the Slack stand-in on aiohttp test servers,
real clients pointed at them, a fake clock that drives all of it, and small recorders.

Import from test modules as ``from harness import ...`` (pytest puts ``tests/`` on the path).
Nothing here sleeps for real: time moves when a test (or an injected ``sleep``) moves the
:class:`FakeClock`, and the rigs' clients are built without retry handlers that would wait.

- :func:`serve_polaris` — a :class:`~watchdog.devtools.polaris_sim.simulator.Simulator` behind a
TestServer and a
  real :class:`~watchdog.polaris.client.PolarisClient` (no rate limit, one attempt, no sleeping);
- :func:`serve_slack` — a :class:`~watchdog.devtools.slack_standin.server.SlackStandIn` behind a
TestServer
  and a real ``AsyncWebClient`` (no retry handlers: the dispatcher's retry path is tested);
- :class:`WatchRig` / :func:`watch_rig` — watcher + outbox dispatcher + a notifier, with
  :meth:`WatchRig.step` = move the clock one interval, tick, deliver;
- :class:`RecordingNotifier` — a notifier that records, and fails or dead-letters on demand;
- :func:`holder` — a :class:`~watchdog.rules.holder.RulesHolder` from TOML text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from watchdog.deliver.notifier import DeliveryUnavailable, Notifier, Receipts
from watchdog.deliver.outbox import Dispatcher
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.domain.alerts import (
    DEFAULT_PROJECT,
    AlertState,
    Condition,
    JobFacts,
    Phase,
    Reason,
    RuleFacts,
)
from watchdog.domain.outgoing import AuditEntry, Notification, Outgoing
from watchdog.polaris.client import PolarisClient, RetryPolicy
from watchdog.rules.holder import RulesHolder
from watchdog.rules.load import parse_ruleset
from watchdog.store import Fence, OutboxRecord, Store
from watchdog.watch.loop import Watcher
from watchdog.watch.tick import TickReport

#: A round epoch second (a multiple of 30 and 60), so tick times are easy to read.
START = 1_700_000_040.0
CHANNEL = "C0ALERTS"
AUDIT_CHANNEL = "C0AUDIT"
BOT_TOKEN = "xoxb-standin"
#: The lease holder of tests that deliver without a watcher.
TEST_HOLDER = "test-replica"


async def hold(store: Store, project: str = DEFAULT_PROJECT) -> dict[str, Fence]:
    """Take ``project``'s lease for the test (a day long): the fences a dispatcher
    delivers under (the project's, which also covers coordinator items)."""
    term = await store.acquire_lease(project, TEST_HOLDER, 86_400.0)
    assert term is not None, f"the lease of {project!r} is held by another holder"
    fence = Fence(project, term)
    return {project: fence, "": fence}


def job_id(n: int) -> str:
    """A valid, readable job id (Polaris ids are UUIDs): job_id(7) ends in ...0007."""
    return f"{n:08x}-0000-4000-8000-{n:012x}"


class FakeClock:
    """Epoch seconds that move only when told to; callable like ``time.time``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Sleeps:
    """An injectable ``sleep`` that records the delays and moves ``clock`` by them (if given).

    ``stop_after`` raises :class:`StopLoop` on that call, which is how a test ends a loop
    that would otherwise run for ever.
    """

    def __init__(self, clock: FakeClock | None = None, stop_after: int | None = None) -> None:
        self.clock = clock
        self.stop_after = stop_after
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.stop_after is not None and len(self.delays) >= self.stop_after:
            raise StopLoop
        if self.clock is not None:
            self.clock.advance(max(delay, 0.0))
        # Yield as a real sleep would, so a loop under test cannot starve the test.
        await asyncio.sleep(0)


class StopLoop(Exception):
    """Raised by :class:`Sleeps` to end a ``run()`` loop under test."""


def holder(toml: str, path: str = "rules.toml") -> RulesHolder:
    """A rules holder over rules-file text (problems raise ``RulesFileError``)."""
    return RulesHolder(parse_ruleset(toml, path))


def remove_job(sim: Simulator, job: str) -> None:
    """Delete a job from the simulator, as if someone deleted it in Polaris (GET → 404)."""
    sim.remove_job(job)


# ---- Polaris ----------------------------------------------------------------------------


@asynccontextmanager
async def serve_polaris(
    sim: Simulator, *, attempts: int = 1, concurrency: int = 16
) -> AsyncIterator[PolarisClient]:
    """A real PolarisClient talking to ``sim`` on a local test server.

    No rate limit and no real sleeping between retries (the delays go to a recorder),
    so a test with a broken Polaris stays fast.
    """
    async with TestServer(sim.app()) as server, aiohttp.ClientSession() as session:
        yield PolarisClient(
            session,
            str(server.make_url("")),
            sim.project_id,
            SecretStr(sim.api_key),
            concurrency=concurrency,
            max_rate=None,
            timeout=10.0,
            retry=RetryPolicy(attempts=attempts, base=0.01, cap=0.01),
            sleep=Sleeps(),
        )


def list_queries(sim: Simulator) -> list[str]:
    """The query strings of every ``GET /jobs`` the simulator answered, in order."""
    return [query for _, _, path, query in sim.stats.request_log if path.endswith("/jobs")]


def metric_paths(sim: Simulator) -> list[str]:
    """The paths of every metrics request the simulator answered, in order."""
    return [path for _, _, path, _ in sim.stats.request_log if path.endswith("/metrics")]


# ---- Slack ------------------------------------------------------------------------------


@dataclass
class SlackRig:
    standin: SlackStandIn
    web: AsyncWebClient
    session: aiohttp.ClientSession

    def client(self, token: str) -> AsyncWebClient:
        """Another real client on the same stand-in, e.g. with a wrong token."""
        return AsyncWebClient(
            token=token, base_url=self.standin.api_url, session=self.session, retry_handlers=[]
        )


@asynccontextmanager
async def serve_slack(
    clock: Callable[[], float], channels: Sequence[str] | None = None
) -> AsyncIterator[SlackRig]:
    """The Slack stand-in on a local test server and a real ``AsyncWebClient`` for it.

    The client has no retry handlers: slack-sdk's handlers sleep for real, and the outbox
    dispatcher's own retry path (driven by the fake clock) is what the tests exercise.
    """
    standin = SlackStandIn(
        bot_token=BOT_TOKEN,
        channels=set(channels) if channels is not None else None,
        clock=clock,
    )
    async with TestServer(standin.app()) as server, aiohttp.ClientSession() as session:
        standin.bind(str(server.make_url("")))
        web = AsyncWebClient(
            token=BOT_TOKEN, base_url=standin.api_url, session=session, retry_handlers=[]
        )
        yield SlackRig(standin, web, session)


# ---- notifiers --------------------------------------------------------------------------


class RecordingNotifier:
    """Accepts everything and records it, unless told to fail.

    ``unavailable`` holds the ``retry_after`` of each coming failed ``deliver`` call (a
    failure happens after ``accept_first`` items of that call went through); ``refuse``
    dead-letters the items it returns True for.
    """

    def __init__(self) -> None:
        self.items: list[Outgoing] = []
        self.record_ids: list[int] = []
        self.unavailable: list[float | None] = []
        self.accept_first = 0
        self.refuse: Callable[[Outgoing], bool] = lambda item: False
        self.calls = 0
        self._changed = asyncio.Condition()

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        self.calls += 1
        failing = bool(self.unavailable)
        for index, record in enumerate(records):
            if failing and index >= self.accept_first:
                raise DeliveryUnavailable("destination down (test)", self.unavailable.pop(0))
            if not await receipts.start([record.id]):
                continue
            if self.refuse(record.item):
                await receipts.dead(record.id, "refused (test)")
                continue
            self.items.append(record.item)
            self.record_ids.append(record.id)
            await receipts.done(record.id)
            async with self._changed:
                self._changed.notify_all()
        if failing:  # fewer records than accept_first: the failure still happens once
            raise DeliveryUnavailable("destination down (test)", self.unavailable.pop(0))

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` items were delivered."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.items) >= count)

    @property
    def notifications(self) -> list[Notification]:
        return [item for item in self.items if isinstance(item, Notification)]

    def seen(self) -> list[tuple[str, str, str]]:
        """(reason, rule, job id) of every notification, in delivery order."""
        return [(n.reason.value, n.alert.rule, n.alert.job_id) for n in self.notifications]

    def clear(self) -> None:
        self.items.clear()
        self.record_ids.clear()


# ---- domain objects ---------------------------------------------------------------------


def alert(
    job: str,
    *,
    rule: str = "job-unhealthy",
    table: str | None = "clicks",
    phase: Phase = Phase.FIRING,
    at: float = START,
    summary: str = "health error: internal_error",
    health_message: str = "An internal error occurred",
) -> AlertState:
    """A firing (or other phase) alert of ``rule`` on ``job``, as the watcher makes them."""
    facts = JobFacts(
        job_id=job,
        table=table,
        type="streaming",
        execution_status="running",
        health_status="error",
        health_code="internal_error",
        health_message=health_message,
    )
    return AlertState(
        rule=rule,
        job_id=job,
        phase=phase,
        severity="critical",
        since=at,
        last_active=at,
        last_eval=at,
        job=facts,
        condition=Condition(True, summary=summary),
        fired_at=at if phase is not Phase.PENDING else None,
        resolved_at=at if phase is Phase.RESOLVED else None,
        resolve_reason="health is ok again" if phase is Phase.RESOLVED else None,
    )


def notification(
    state: AlertState,
    reason: Reason = Reason.NEW,
    *,
    channel: str | None = None,
    mention: str | None = None,
) -> Notification:
    return Notification(
        reason=reason,
        alert=state,
        rule=RuleFacts(name=state.rule, kind="health", severity=state.severity),
        channel=channel,
        mention=mention,
    )


def audit(n: int, *, at: float = START, channel: str | None = None) -> AuditEntry:
    """The n-th distinguishable audit entry."""
    return AuditEntry(
        user="U0OPERATOR",
        action="pause",
        target=job_id(n),
        result="ok",
        at=at,
        channel=channel,
        table=f"table_{n}",
    )


# ---- the watch loop with delivery -------------------------------------------------------


@dataclass
class WatchRig:
    """A watcher, an outbox dispatcher and a notifier over one store and one fake clock."""

    clock: FakeClock
    sim: Simulator
    client: PolarisClient
    store: Store
    rules: RulesHolder
    notifier: Notifier
    watcher: Watcher
    dispatcher: Dispatcher
    reports: list[TickReport] = field(default_factory=list)

    @property
    def interval(self) -> float:
        return self.rules.current.watch.interval

    async def tick(self) -> TickReport:
        """Tick at the clock's current time — with one sweep of the metrics between its
        listings and its judgement, as ``test-rules`` does — then deliver what it owes."""
        report = await self.watcher.tick(self.clock(), before_judging=self.watcher.sweep.sweep_once)
        self.reports.append(report)
        await self.dispatcher.deliver_once()
        return report

    async def step(self, ticks: int = 1) -> TickReport:
        """Move the clock one interval and tick, ``ticks`` times; the last report."""
        report = None
        for _ in range(ticks):
            self.clock.advance(self.interval)
            report = await self.tick()
        assert report is not None
        return report

    async def restart(self, store: Store) -> Watcher:
        """A new watcher and dispatcher (a restarted process) on ``store``, leading the
        project again (which loads what the store holds). The notifier is kept, so use one
        that holds no store of its own."""
        self.store = store
        self.watcher, self.dispatcher = wire(
            self.client, store, self.rules, self.clock, self.notifier
        )
        await lead(self.watcher, store)
        return self.watcher


def wire(
    client: PolarisClient,
    store: Store,
    rules: RulesHolder,
    clock: FakeClock,
    notifier: Notifier,
) -> tuple[Watcher, Dispatcher]:
    """A watcher and a dispatcher wired as the app wires them: the dispatcher delivers
    under the watcher's leases, the watcher wakes it on every commit."""
    watchers: list[Watcher] = []

    def fences() -> dict[str, Fence]:
        fence = watchers[0].fence
        return {} if fence is None else {DEFAULT_PROJECT: fence, "": fence}

    dispatcher = Dispatcher(store, notifier, clock=clock, sleep=Sleeps(), fences=fences)
    watchers.append(new_watcher(client, store, rules, clock, dispatcher))
    return watchers[0], dispatcher


async def lead(watcher: Watcher, store: Store, holder: str = "rig") -> int:
    """Take the watcher's project lease in ``store`` (for an hour) and lead under it."""
    term = await store.acquire_lease(watcher.project, holder, 3600.0)
    assert term is not None, "another holder has the lease"
    await watcher.lead(term)
    return term


def new_watcher(
    client: PolarisClient,
    store: Store,
    rules: RulesHolder,
    clock: FakeClock,
    dispatcher: Dispatcher,
) -> Watcher:
    """A watcher that wakes ``dispatcher`` on every commit, as the app wires them."""
    return Watcher(
        project=DEFAULT_PROJECT,
        client=client,
        store=store,
        rules=rules,
        on_commit=dispatcher.wake,
        clock=clock,
        sleep=Sleeps(clock),
    )


@asynccontextmanager
async def watch_rig(
    sim: Simulator,
    rules: RulesHolder,
    store: Store,
    notifier: Notifier,
    clock: FakeClock,
) -> AsyncIterator[WatchRig]:
    """The watch loop over ``sim`` with delivery to ``notifier``; ``store`` must be open."""
    async with serve_polaris(sim) as client:
        watcher, dispatcher = wire(client, store, rules, clock, notifier)
        await lead(watcher, store)
        yield WatchRig(clock, sim, client, store, rules, notifier, watcher, dispatcher)
