"""The verdict of a multi-replica chaos run.

The incidents are counted as for one replica (:func:`chaos_accounting.account`: every
error window one expected incident; lost, duplicated, resolved by editing its post,
spurious). Several replicas add the fencing checks, from the rig's own records:

- every write to a project's rows (alerts, outbox, messages, samples) was made by the
  replica holding that project's lease at that point of the database's history — the
  audit triggers put writes and lease changes in one sequence;
- every Slack post or edit about a project's job began while the replica making it held
  that project's lease (by the lease history's timestamps);

and the figures of the phases: failover times, what the database outage did.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaos_accounting import SHUTDOWN_LIMIT, ChaosReport, account
from chaos_ha_rig import PROJECTS, REPLICAS, HaLog, app_name

if TYPE_CHECKING:
    from chaos_ha_rig import HaRig

_POSTING = ("chat.postMessage", "chat.update")
#: Items of no project ride on the first project's lease (the coordinator's).
_COORDINATOR = min(PROJECTS)


@dataclass
class HaReport:
    single: ChaosReport  # the incident accounting, as for one replica
    record: HaLog
    #: (replica, epoch seconds, what): writes and Slack calls made without the lease
    stale_writes: list[tuple[str, float, str]] = field(default_factory=list)
    stale_calls: list[tuple[str, float, str]] = field(default_factory=list)
    writes_checked: int = 0
    calls_checked: int = 0
    resolved_by_another: int = 0  # resolves edited by another replica than the poster

    # ---- figures -----------------------------------------------------------------------

    def figure(self, name: str) -> float | None:
        return self.record.figures.get(name)

    def after_waking(self, stale: list[tuple[str, float, str]]) -> int:
        """How many of ``stale`` a replica made after it was SIGCONTed."""
        return sum(
            1
            for replica, at, _ in stale
            for paused, _stopped, woke in self.record.pauses
            if replica == paused and at >= woke
        )

    @property
    def sigterms(self) -> list[tuple[int | None, float]]:
        return [(s.exit_code, s.seconds) for s in self.record.stops if s.how == "SIGTERM"]

    def rows(self) -> list[tuple[str, str]]:
        s = self.single
        stops = [x for x in self.record.stops if not x.final]
        kills = sum(1 for x in stops if x.how == "SIGKILL")
        rows = [
            ("replicas × projects", f"{len(REPLICAS)} × {len(PROJECTS)}"),
            ("incidents expected", str(s.expected)),
            ("incidents delivered", str(s.delivered)),
            ("incidents lost", str(len(s.lost))),
            ("incidents duplicated", str(len(s.duplicated) + len(s.explained_duplicates))),
            ("resolves that edited the original post", f"{s.resolves_delivered} / {s.delivered}"),
            ("… edited by another replica than the poster", str(self.resolved_by_another)),
            ("extra resolve edits", str(s.repeated_edits)),
            ("spurious posts", str(len(s.spurious))),
            ("meta-alerts", str(len(s.meta_posts))),
            (
                "writes made without the project's lease",
                f"{len(self.stale_writes)} of {self.writes_checked}",
            ),
            (
                "Slack posts/edits made without the project's lease",
                f"{len(self.stale_calls)} of {self.calls_checked}",
            ),
        ]
        rows += [(name, _show(value)) for name, value in self.record.figures.items()]
        rows += [
            (
                "sigstop: writes / Slack posts and edits by the woken replica without the lease",
                f"{self.after_waking(self.stale_writes)} / {self.after_waking(self.stale_calls)}",
            )
        ]
        terms = self.sigterms
        rows += [
            (
                "replica stops survived",
                f"{s.restarts_survived} of {len(stops)} "
                f"({kills} SIGKILL, {len(stops) - kills} SIGTERM); "
                f"{len(self.record.pauses)} SIGSTOP/SIGCONT",
            ),
            ("SIGTERM exit codes (last 3: end of run)", ", ".join(str(c) for c, _ in terms)),
            ("SIGTERM shutdown seconds", ", ".join(f"{x:.2f}" for _, x in terms)),
            ("crashes (exits not asked for)", str(len(self.record.crashes))),
            ("tracebacks in the bots' logs", str(len(s.logs.tracebacks))),
            ("error events in the bots' logs", str(len(s.logs.errors))),
            ("outbox size at the end", _show(self.record.outbox_at_end)),
            ("run time", f"{self.record.seconds:.1f} s"),
        ]
        return rows

    def markdown(self) -> str:
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        return "\n".join(lines)

    def problems(self) -> list[str]:
        """Everything that went wrong, for a failing test."""
        s = self.single
        out = [f"LOST {i.window.job_id} ({i.window.note})" for i in s.lost]
        out += [
            f"DUPLICATED {i.window.job_id} ({i.window.note}): posts at "
            + ", ".join(p.ts for p in i.posts)
            for i in s.duplicated + s.explained_duplicates
        ]
        out += [f"UNRESOLVED {i.window.job_id} ({i.window.note})" for i in s.unresolved]
        out += [f"SPURIOUS {line}" for line in s.spurious]
        out += [f"STALE WRITE {line}" for _, _, line in self.stale_writes]
        out += [f"STALE SLACK CALL {line}" for _, _, line in self.stale_calls]
        out += [
            f"SIGTERM ({x.note}) exit {x.exit_code} after {x.seconds:.2f}s"
            for x in self.record.stops
            if x.how == "SIGTERM" and (x.exit_code != 0 or x.seconds > SHUTDOWN_LIMIT)
        ]
        out += [f"NOT BACK after {x.how} ({x.note})" for x in self.record.stops if not x.final
                and not x.restarted]  # fmt: skip
        out += [f"CRASH exit {c.exit_code} ({c.log}):\n{c.tail}" for c in self.record.crashes]
        out += [f"TRACEBACK {t}" for t in s.logs.tracebacks]
        out += [n for n in self.record.notes if n.startswith("STOPPED EARLY")]
        if self.record.outbox_at_end != 0:
            out.append(f"OUTBOX at the end: {self.record.outbox_at_end}")
        return out


def _show(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.2f}" if value != int(value) else f"{value:g}"


def account_ha(rig: HaRig, *, grace: float) -> HaReport:
    record = rig.record
    messages = dict(rig.standin.messages)
    single = account(record, messages.values(), controls=rig.controls, grace=grace)
    report = HaReport(single, record)
    _check_writes(report)
    project_of_ts = {
        ts: rig.project_of[job]
        for ts, message in messages.items()
        for job in rig.project_of
        if job in message.text
    }
    _check_calls(report, project_of_ts)
    posted_by = {
        c.ts: c.replica for c in record.slack_calls if c.method == "chat.postMessage" and c.ok
    }
    report.resolved_by_another = len(
        {
            c.ts
            for c in record.slack_calls
            if c.method == "chat.update" and c.ok and posted_by.get(c.ts, c.replica) != c.replica
        }
    )
    return report


def _check_writes(report: HaReport) -> None:
    """Every write by a replica came while it held the lease of the write's project."""
    apps = {app_name(name): name for name in REPLICAS}
    events: list[tuple[int, str, tuple[str, ...]]] = [
        (seq, "lease", (project, holder))
        for seq, project, holder, _term, _at in report.record.leases
    ]
    events += [
        (seq, "write", (app, tbl, op, project))
        for seq, app, tbl, op, project, _at in report.record.writes
    ]
    holder: dict[str, str] = {}
    at_of = {seq: at for seq, *_, at in report.record.writes}
    for seq, kind, data in sorted(events):
        if kind == "lease":
            project, name = data
            holder[project] = name
            continue
        app, tbl, op, project = data
        replica = apps.get(app)
        if replica is None:
            continue  # the rig's own connection
        report.writes_checked += 1
        lease = project or _COORDINATOR
        if holder.get(lease) != replica:
            report.stale_writes.append(
                (
                    replica,
                    at_of[seq],
                    f"#{seq} {replica} {op} {tbl} of {lease} while {holder.get(lease)} held it",
                )
            )


def _check_calls(report: HaReport, project_of_ts: dict[str, str]) -> None:
    """Every Slack post or edit about a project's job began while its maker held the lease."""
    history: dict[str, tuple[list[float], list[str]]] = {p: ([], []) for p in PROJECTS}
    for _seq, project, holder, _term, at in report.record.leases:
        times, holders = history.setdefault(project, ([], []))
        times.append(at)
        holders.append(holder)
    for call in report.record.slack_calls:
        project = project_of_ts.get(call.ts)
        if call.method not in _POSTING or not call.ok or project is None:
            continue
        report.calls_checked += 1
        times, holders = history[project]
        i = bisect.bisect_right(times, call.began) - 1
        held = holders[i] if i >= 0 else None
        if held != call.replica:
            report.stale_calls.append(
                (
                    call.replica,
                    call.began,
                    f"{call.replica} {call.method} {call.ts} ({project}) at {call.began:.3f} "
                    f"while {held} held it",
                )
            )
