"""The grouping stage on its own (no Slack): which outbox records are sent together, and
the terminal notifier, which groups storms through the same stage."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from harness import START, alert, audit, job_id, notification

from watchdog.deliver.group import SendUnit, group, storm_key
from watchdog.deliver.terminal import TerminalNotifier
from watchdog.domain.alerts import META_RULE, Phase, Reason
from watchdog.domain.outgoing import Outgoing
from watchdog.store import Fence, MessageRef, OutboxRecord


def records(*items: Outgoing, first_id: int = 1) -> list[OutboxRecord]:
    return [OutboxRecord(first_id + n, item, 0, START, START) for n, item in enumerate(items)]


def new(n: int, *, rule: str = "job-unhealthy", channel: str | None = None) -> Outgoing:
    return notification(alert(job_id(n), rule=rule), channel=channel)


def later(n: int, reason: Reason, *, rule: str = "job-unhealthy") -> Outgoing:
    phase = Phase.RESOLVED if reason is Reason.RESOLVED else Phase.FIRING
    return notification(alert(job_id(n), rule=rule, phase=phase), reason)


def incident(n: int, rule: str = "job-unhealthy") -> str:
    return alert(job_id(n), rule=rule).incident_id


def shape(units: Sequence[SendUnit]) -> list[tuple[str, list[int], str | None]]:
    return [(u.kind, [r.id for r in u.records], u.storm) for u in units]


def nothing_known(incident_id: str) -> str | None:
    return None


def test_few_new_alerts_are_single_items_in_order() -> None:
    """Below the threshold every alert is its own unit, in enqueue order."""
    batch = records(new(1), new(2), audit(3), new(4))
    units = group(batch, threshold=5, storm_of=nothing_known)
    assert shape(units) == [
        ("single", [1], None),
        ("single", [2], None),
        ("audit", [3], None),
        ("single", [4], None),
    ]


def test_threshold_new_alerts_of_one_rule_are_one_storm_at_the_first_ones_place() -> None:
    """Five NEW alerts of one rule are one storm unit, placed where its first member was;
    other rules and audit lines keep their own places."""
    batch = records(
        audit(1), new(1), new(2, rule="other"), new(3), new(4), new(5), audit(2), new(6)
    )
    units = group(batch, threshold=5, storm_of=nothing_known)
    key = storm_key("default", "job-unhealthy", 2)
    assert shape(units) == [
        ("audit", [1], None),
        ("storm", [2, 4, 5, 6, 8], key),
        ("single", [3], None),
        ("audit", [7], None),
    ]


def test_storms_are_per_channel_and_per_project() -> None:
    """The same rule in two channels, or two projects, is two separate counts."""
    elsewhere = [new(n, channel="C0OTHER") for n in range(10, 14)]
    other_project = [
        dataclasses.replace(new(n), alert=dataclasses.replace(alert(job_id(n)), project="prod"))
        for n in range(20, 24)
    ]
    batch = records(*(new(n) for n in range(1, 6)), *elsewhere, *other_project)
    units = group(batch, threshold=5, storm_of=nothing_known)
    assert [u.kind for u in units] == ["storm"] + ["single"] * 8


def test_meta_alert_is_never_grouped() -> None:
    """Alerts about Polaris itself are always single, however many."""
    metas = [notification(dataclasses.replace(alert(job_id(n)), rule=META_RULE)) for n in range(6)]
    units = group(records(*metas), threshold=2, storm_of=nothing_known)
    assert {u.kind for u in units} == {"single"}


def test_follow_ups_of_storm_members_are_grouped_per_storm_and_kind() -> None:
    """Repeats and resolves of members of an earlier storm become one unit per kind."""
    members = {incident(n): "storm/default/job-unhealthy/1" for n in range(1, 6)}
    batch = records(
        later(1, Reason.RESOLVED),
        later(2, Reason.REPEAT),
        later(3, Reason.RESOLVED),
        later(9, Reason.RESOLVED),  # not a member: its own message
        later(4, Reason.CHANGED),
    )
    units = group(batch, threshold=5, storm_of=members.get)
    storm = "storm/default/job-unhealthy/1"
    assert shape(units) == [
        ("storm-resolved", [1, 3], storm),
        ("storm-repeat", [2], storm),
        ("single", [4], None),
        ("storm-changed", [5], storm),
    ]


def test_new_and_resolve_of_the_same_storm_in_one_batch_are_routed_without_lookup() -> None:
    """After an outage a storm and its resolves can share a batch: the resolves follow
    the storm formed in the batch, without asking the lookup."""
    asked: list[str] = []

    def lookup(incident_id: str) -> str | None:
        asked.append(incident_id)
        return None

    batch = records(
        *(new(n) for n in range(1, 6)), *(later(n, Reason.RESOLVED) for n in range(1, 6))
    )
    units = group(batch, threshold=5, storm_of=lookup)
    storm = storm_key("default", "job-unhealthy", 1)
    assert shape(units) == [
        ("storm", [1, 2, 3, 4, 5], storm),
        ("storm-resolved", [6, 7, 8, 9, 10], storm),
    ]
    assert asked == []


def test_new_alerts_never_ask_which_storm_they_belong_to() -> None:
    """A NEW incident cannot be an old storm's member: only follow-ups are looked up."""
    asked: list[str] = []

    def lookup(incident_id: str) -> str | None:
        asked.append(incident_id)
        return "storm/x"

    units = group(records(new(1), later(2, Reason.REPEAT)), threshold=5, storm_of=lookup)
    assert [u.kind for u in units] == ["single", "storm-repeat"]
    assert asked == [incident(2)]


# ---- the terminal notifier uses the stage -----------------------------------------------


class TerminalReceipts:
    def __init__(self) -> None:
        self.settled: list[int] = []

    async def start(self, record_ids: Sequence[int]) -> list[int]:
        return list(record_ids)

    def fence(self, project: str) -> Fence:
        return Fence(project, 1)

    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        self.settled.append(record_id)

    async def dead(self, record_id: int, error: str) -> None:
        raise AssertionError("the terminal never dead-letters")

    def out_of_time(self) -> bool:
        return False


async def test_terminal_prints_a_storm_as_one_line_with_a_count() -> None:
    """Twelve jobs failing at once are one FIRING line saying 12 jobs, and their resolves
    one RESOLVED line with the count; every record is settled."""
    lines: list[str] = []
    terminal = TerminalNotifier(write=lines.append, colour=False, group_threshold=lambda: 5)
    receipts = TerminalReceipts()
    firing = records(*(new(n) for n in range(1, 13)))
    await terminal.deliver(firing, receipts)
    resolving = records(*(later(n, Reason.RESOLVED) for n in range(1, 5)), first_id=100)
    await terminal.deliver(resolving, receipts)
    assert len(lines) == 2
    assert lines[0].split()[1] == "FIRING" and "12 jobs" in lines[0] and "clicks" in lines[0]
    assert lines[1].split()[1] == "RESOLVED" and "4 jobs resolved (4 of 12)" in lines[1]
    assert sorted(receipts.settled) == [*range(1, 13), *range(100, 104)]


async def test_terminal_prints_single_alerts_one_line_each() -> None:
    """Below the threshold the terminal shows one line per alert, as before."""
    lines: list[str] = []
    terminal = TerminalNotifier(write=lines.append, colour=False)
    await terminal.deliver(records(new(1), new(2)), TerminalReceipts())
    assert [line.split()[1] for line in lines] == ["FIRING", "FIRING"]
    assert job_id(1) in lines[0] and job_id(2) in lines[1]
