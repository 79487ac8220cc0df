"""Property: whatever Polaris answers, a tick ends, and no job without valid data alerts.

Hypothesis plays a hostile Polaris behind the :class:`~watchdog.polaris.api.PolarisApi`
protocol for a few ticks of a real :class:`~watchdog.watch.loop.Watcher` (observe, sweep,
judge — :func:`~watchdog.watch.tick.judge_tick` — and commit) with one rule of every kind.
Listing pages go through the real client's page parsing, metrics through its model, so
what Polaris sends is read exactly as in production. Each run mixes:

- *clean* jobs: readable, with counters that only grow or reset, statuses, health and
  ages that change from tick to tick — they may alert or not;
- *hostile* jobs: a listing entry that cannot be read, or a finished, failed job whose
  timestamps cannot be read, with healthy health — and every metrics answer impossible
  (negative, NaN, infinite, 1e308, past 2^63, strings, missing);
- whole calls failing: unreachable, malformed, rejected key, a listing cut off, a job gone.

Checked: no exception escapes :meth:`Watcher.tick`; no alert is ever raised for a hostile
job; every message rendered for what the ticks committed is free of inf, nan and
exponent notation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness import FakeClock, Sleeps, holder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.domain.alerts import META_RULE, Reason
from watchdog.domain.outgoing import Notification
from watchdog.polaris.api import JobListing
from watchdog.polaris.client import PolarisClient
from watchdog.polaris.errors import (
    PolarisAuthError,
    PolarisError,
    PolarisListingIncompleteError,
    PolarisMalformedError,
    PolarisNotFoundError,
    PolarisUnavailableError,
    check_job_id,
)
from watchdog.polaris.models import Job, Metrics
from watchdog.slack.alerts.messages import alert_message, resolved_message, thread_reply
from watchdog.store.memory import MemoryStore
from watchdog.watch.loop import Watcher

RULES = """
[watch]
interval = "30s"
no_data_after = "1m"
[slack]
channel = "C0ALERTS"
[[rules]]
name = "unhealthy"
kind = "health"
status = ["warn", "error"]
[[rules]]
name = "failed"
kind = "execution"
status = ["failed"]
[[rules]]
name = "skips-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 10
within = "2m"
[[rules]]
name = "fast"
kind = "rate"
metric = "numRowsProcessed"
above = 100
within = "2m"
[[rules]]
name = "bad-share"
kind = "ratio"
numerator = "numRowsSkippedByError"
denominator = "numRowsProcessed"
above = 0.01
within = "2m"
[[rules]]
name = "stuck"
kind = "stalled"
within = "2m"
[[rules]]
name = "budget"
kind = "budget"
percent = 50
within = "2m"
"""
METRICS = ("numRowsProcessed", "numRowsSkippedByError", "numBytesProcessed")
TABLES = ("clicks", "orders", "views")
#: A number written as a float with an exponent, or a word no reader should see.
NONSENSE = re.compile(r"\binf\b|\bnan\b|infinity|\d[eE][+-]?\d", re.IGNORECASE)
ERRORS: tuple[PolarisError, ...] = (
    PolarisUnavailableError("cannot reach Polaris: ConnectionRefused", endpoint="x"),
    PolarisMalformedError("answer is not JSON (text/html)", endpoint="x"),
    PolarisAuthError("Missing or invalid API key", endpoint="x", status=401),
    PolarisListingIncompleteError("cut off", endpoint="list_jobs"),
)


def job_id(n: int) -> str:
    # Digits only: a hex "e" between digits would look like an exponent to NONSENSE.
    return f"{n:08d}-0000-4000-8000-{n:012d}"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


# ---- what Polaris says at one tick ---------------------------------------------------------


@dataclass
class Tick:
    """Polaris' answers during one tick."""

    entries: list[Any]  # the listing's raw entries, as JSON would give them
    metrics: dict[str, Any]  # job id -> raw totals (or an error to raise)
    list_error: PolarisError | None = None
    lookup_error: PolarisError | None = None


@dataclass
class World:
    hostile: set[str]
    ticks: list[Tick]
    clean: set[str] = field(default_factory=set)


impossible_counter = st.one_of(
    st.floats(max_value=-1e-9, allow_nan=False),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.just(1e308),
    st.integers(min_value=2**63 + 1, max_value=2**80),
    st.text(max_size=5),
    st.none(),
)


@st.composite
def hostile_entry(draw: st.DrawFn, jid: str) -> Any:
    """A listing entry the bot must not act on: unreadable, or failed with no readable age."""
    unreadable = st.one_of(
        st.just({"id": 42, "type": "batch"}),
        st.just({"type": "streaming", "executionStatus": "failed"}),
        st.just({"id": jid, "health": "broken", "executionStatus": ["failed"]}),
        st.just({"id": jid, "maxParseExceptions": "lots"}),
        st.just([jid]),
        st.just(None),
        st.just(jid),
    )
    stamp = st.sampled_from(
        [None, "", "yesterday, around noon", "2024-13-45T25:61:99.000Z", 1_700_000_000, {}, []]
    )
    aged = st.builds(
        lambda created, updated: {
            "id": jid,
            "type": "batch",
            "executionStatus": "failed",
            "health": {"status": "ok"},
            "target": {"tableName": "orders"},
            "maxParseExceptions": 10,
            "createdTimestamp": created,
            "lastUpdatedTimestamp": updated,
        },
        stamp,
        stamp,
    )
    return draw(st.one_of(unreadable, aged))


@st.composite
def clean_entry(draw: st.DrawFn, jid: str, now: float) -> dict[str, Any]:
    health = draw(
        st.sampled_from(
            [
                {"status": "ok"},
                {"status": "warn", "code": "lost_connection_to_source"},
                {"status": "error", "code": "internal_error", "message": "it broke"},
                {"status": "error"},
            ]
        )
    )
    return {
        "id": jid,
        "type": draw(st.sampled_from(["streaming", "batch"])),
        "executionStatus": draw(
            st.sampled_from(["running", "running", "failed", "completed", "suspended"])
        ),
        "health": health,
        "target": {"tableName": draw(st.sampled_from(TABLES))},
        "maxParseExceptions": draw(st.sampled_from([None, 0, 100, 2_147_483_647])),
        "createdTimestamp": iso(now - 86_400 * 30),
        "lastUpdatedTimestamp": iso(now - draw(st.sampled_from([0, 60, 3_600, 86_400 * 3]))),
    }


@st.composite
def worlds(draw: st.DrawFn) -> World:
    jobs = [job_id(n) for n in range(1, draw(st.integers(min_value=2, max_value=7)))]
    hostile = set(draw(st.sets(st.sampled_from(jobs), max_size=len(jobs))))
    clean = set(jobs) - hostile
    # Counters start anywhere; a creeping job grows by a hair a tick (a forecast of the
    # parse-error budget then lies millennia away), the others jump about.
    totals = {j: dict.fromkeys(METRICS, float(draw(st.sampled_from([0, 60, 99])))) for j in clean}
    creeping = {j for j in clean if draw(st.booleans())}
    ticks = []
    for index in range(draw(st.integers(min_value=2, max_value=6))):
        now = FakeClock().now + 30 * (index + 1)
        entries: list[Any] = []
        metrics: dict[str, Any] = {}
        for jid in jobs:
            if jid in hostile:
                if draw(st.booleans()):
                    entries.append(draw(hostile_entry(jid)))
                wanted = draw(st.sets(st.sampled_from(METRICS)))
                metrics[jid] = {metric: draw(impossible_counter) for metric in wanted}
                continue
            if draw(st.integers(min_value=0, max_value=9)) > 0:  # now and then not listed
                entries.append(draw(clean_entry(jid, now)))
            for metric in METRICS:
                if jid in creeping:
                    totals[jid][metric] += 1e-12
                elif draw(st.integers(min_value=0, max_value=19)) == 0:
                    totals[jid][metric] = 0.0  # a reset
                else:
                    totals[jid][metric] += draw(st.sampled_from([0, 1, 5, 50, 5_000, 10**9]))
            metrics[jid] = draw(st.sampled_from([dict(totals[jid]), None]))  # None: fails
        if draw(st.booleans()):
            entries = entries + entries[: draw(st.integers(0, 2))]  # listed twice
        ticks.append(
            Tick(
                entries=entries,
                metrics=metrics,
                list_error=draw(st.one_of(st.none(), st.none(), st.sampled_from(ERRORS))),
                lookup_error=draw(st.sampled_from([None, ERRORS[0], "gone"])),  # type: ignore[arg-type]
            )
        )
    return World(hostile=hostile, ticks=ticks, clean=clean)


class HostilePolaris:
    """The PolarisApi of one hypothesis world; :attr:`tick` is the answer sheet in force."""

    concurrency = 4

    def __init__(self) -> None:
        self.tick = Tick(entries=[], metrics={})

    def _jobs(self) -> tuple[list[Job], set[str]]:
        raw = {"values": self.tick.entries, "moreResultsAvailable": False}
        page = PolarisClient._parse_page(raw, 1000)  # the real client's reading of a page
        return page.jobs, set(page.unparsed_ids)

    async def list_jobs(
        self,
        *,
        health: Iterable[str] = (),
        execution: Iterable[str] = (),
        types: Iterable[str] = (),
        table: str | None = None,
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> JobListing:
        if self.tick.list_error is not None:
            raise self.tick.list_error
        healths, executions, kinds = set(health), set(execution), set(types)
        jobs, unparsed = self._jobs()
        listing = JobListing(pages=1, unparsed_ids=unparsed)
        seen: set[str] = set()
        for job in jobs:
            if healths and job.health_status not in healths:
                continue
            if executions and job.execution_status not in executions:
                continue
            if (kinds and job.type not in kinds) or (table is not None and job.table != table):
                continue
            if job.id not in seen:
                seen.add(job.id)
                listing.jobs.append(job)
        return listing

    async def get_job(self, job_id: str) -> Job:
        check_job_id(job_id)
        error = self.tick.lookup_error
        if error == "gone":
            raise PolarisNotFoundError("gone", endpoint="get_job", status=404)
        if isinstance(error, PolarisError):
            raise error
        for job in self._jobs()[0]:
            if job.id == job_id:
                return job
        raise PolarisNotFoundError("gone", endpoint="get_job", status=404)

    async def get_metrics(self, job_id: str, *, attempts: int | None = None) -> Metrics:
        check_job_id(job_id)
        totals = self.tick.metrics.get(job_id)
        if totals is None:
            raise PolarisUnavailableError("did not answer", endpoint="metrics")
        # As the real client reads an answer: pydantic's refusal is a malformed answer.
        return PolarisClient._model(Metrics, {"totals": totals}, "metrics")

    async def set_status(self, job_id: str, desired: str) -> Job:
        raise PolarisUnavailableError("not in this test", endpoint="set_status")


def rendered(n: Notification, now: float) -> str:
    """Everything Slack would show of ``n``: fallback text and blocks."""
    if n.reason is Reason.NEW:
        message = alert_message(n, now=now)
    elif n.reason is Reason.RESOLVED:
        message = resolved_message(n, now=now)
    else:
        message = thread_reply(n, now=now)
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(worlds())
async def test_no_exception_escapes_a_tick_and_no_job_without_valid_data_alerts(
    world: World,
) -> None:
    """Ticks over hostile answers end normally; hostile jobs never alert; messages of
    what was committed never show inf, nan or 1e+308."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.open()
    api = HostilePolaris()
    watcher = Watcher(
        project="default",
        client=api,
        store=store,
        rules=holder(RULES),
        clock=clock,
        sleep=Sleeps(clock),
    )
    term = await store.acquire_lease("default", "fuzz", 3600.0)
    assert term is not None
    await watcher.lead(term)
    committed: list[Notification] = []
    for tick in world.ticks:
        clock.advance(30)
        api.tick = tick
        await watcher.tick(clock(), before_judging=watcher.sweep.sweep_once)
        committed += [
            item
            for record in await store.outbox_due(clock(), 10_000)
            if isinstance(item := record.item, Notification)
        ]
        for record in await store.outbox_due(clock(), 10_000):
            await store.outbox_dead(record.id, "read by the test")
    for n in committed:
        if n.alert.rule != META_RULE:
            assert n.alert.job_id not in world.hostile, (
                f"{n.reason} {n.alert.rule} on a job without valid data: "
                f"{n.alert.condition.summary}"
            )
        text = rendered(n, clock())
        assert not NONSENSE.search(text), NONSENSE.search(text)
    await store.close()
