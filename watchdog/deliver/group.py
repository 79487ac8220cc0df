"""Grouping: which outbox records a notifier sends together (Alertmanager's dispatch stage).

A batch of outbox records (one tick's notifications, in enqueue order) becomes a list of
send units, in the order of their first record:

- an audit line, a redraw of an incident's message and a digest are always units of
  their own;
- when a batch brings ``threshold`` or more NEW alerts of one rule for one project and
  channel, they become one *storm*: a single grouped message instead of one per job
  (the meta-alert about Polaris itself is never grouped);
- later repeats, changes and resolves of a storm's members are grouped per storm and
  kind (*storm follow-ups*), so twenty resolves edit the storm once, not twenty times;
- everything else is a *single* item.

The stage knows nothing of Slack or the terminal: both notifiers render its units. It is
pure except for ``storm_of``, the lookup it is given of which storm (by key) an incident
already belongs to; an incident whose storm is formed in the same batch is routed by the
stage itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from watchdog.domain.alerts import META_RULE, Reason
from watchdog.domain.outgoing import AuditEntry, Notification, Redraw
from watchdog.store import OutboxRecord

UnitKind = Literal[
    "audit",
    "redraw",
    "digest",
    "single",
    "storm",
    "storm-repeat",
    "storm-changed",
    "storm-resolved",
    "storm-escalate",
]
_FOLLOW_UP: dict[Reason, UnitKind] = {
    Reason.REPEAT: "storm-repeat",
    Reason.CHANGED: "storm-changed",
    Reason.RESOLVED: "storm-resolved",
    Reason.ESCALATE: "storm-escalate",
    # A NEW for a storm member (a silence ended while it fired) is shown as still firing.
    Reason.NEW: "storm-repeat",
}


@dataclass(frozen=True, slots=True)
class SendUnit:
    """Records sent together: an audit line, one item, a storm, or a storm's follow-ups."""

    kind: UnitKind
    records: tuple[OutboxRecord, ...]
    #: the storm's key, for a storm and its follow-ups
    storm: str | None = None

    @property
    def notifications(self) -> list[Notification]:
        return [r.item for r in self.records if isinstance(r.item, Notification)]


def storm_key(project: str, rule: str, first_record: int) -> str:
    """The key a storm's bookkeeping is stored under (unique: outbox ids are)."""
    return f"storm/{project}/{rule}/{first_record}"


def groupable(item: Notification) -> bool:
    """A NEW alert that may be part of a storm (the meta-alert never is)."""
    return item.reason is Reason.NEW and item.alert.rule != META_RULE


def group(
    records: Sequence[OutboxRecord],
    *,
    threshold: int,
    storm_of: Callable[[str], str | None],
) -> list[SendUnit]:
    """Split a batch into send units, in order (see the module docstring).

    ``storm_of(incident_id)`` is asked only for notifications that are not NEW: a NEW
    incident is never an old storm's member.
    """
    new_counts: dict[tuple[str, str, str | None], int] = {}
    for record in records:
        item = record.item
        if isinstance(item, Notification) and groupable(item):
            key = (item.alert.project, item.alert.rule, item.channel)
            new_counts[key] = new_counts.get(key, 0) + 1
    units: list[tuple[UnitKind, list[OutboxRecord], str | None]] = []
    open_units: dict[tuple[str, ...], int] = {}  # grouping key -> index in units
    member_of: dict[str, str] = {}  # incident -> storm formed in this batch

    def join(key: tuple[str, ...], kind: UnitKind, storm: str, record: OutboxRecord) -> None:
        if key not in open_units:
            open_units[key] = len(units)
            units.append((kind, [], storm))
        units[open_units[key]][1].append(record)

    for record in records:
        item = record.item
        if not isinstance(item, Notification):
            alone: UnitKind = (
                "audit" if isinstance(item, AuditEntry) else
                "redraw" if isinstance(item, Redraw) else "digest"
            )  # fmt: skip
            units.append((alone, [record], None))
            continue
        alert = item.alert
        if groupable(item) and new_counts[(alert.project, alert.rule, item.channel)] >= threshold:
            grouping = ("storm", alert.project, alert.rule, str(item.channel))
            index = open_units.get(grouping)
            storm = units[index][2] if index is not None else None
            storm = storm or storm_key(alert.project, alert.rule, record.id)
            join(grouping, "storm", storm, record)
            member_of[item.incident_id] = storm
            continue
        storm = member_of.get(item.incident_id)
        if storm is None and item.reason is not Reason.NEW:
            storm = storm_of(item.incident_id)
        if storm is not None:
            kind = _FOLLOW_UP[item.reason]
            join((kind, storm), kind, storm, record)
            continue
        units.append(("single", [record], None))
    return [SendUnit(kind, tuple(members), storm) for kind, members, storm in units]
