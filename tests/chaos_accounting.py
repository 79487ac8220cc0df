"""The verdict of a chaos run: what Slack received, held against what happened.

Pure functions over the rig's record (:class:`chaos_harness.ChaosLog`) and the messages
the Slack stand-in keeps. Every error window is one expected incident; the top-level
posts naming its job in ``[opened, closed + grace]`` are its deliveries (none: LOST; more
than one: DUPLICATED), and the delivered post must have been edited to RESOLVED. A post
about a job outside its window, about a job that never failed, or that fits nothing at
all is SPURIOUS. Meta-alerts ("cannot reach Polaris") are counted per Polaris fault.

A duplicate whose first copy Slack accepted just before a SIGKILL is the one documented
exception (the bot records a post only after Slack answers): it is counted apart, as
"explained", with the timing as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos_harness import ChaosLog, Fault, Window

from watchdog.devtools.slack_standin.server import StoredMessage

#: How close before a SIGKILL (seconds, on the stand-in's clock) a post must have been
#: accepted for a re-post of it to count as the documented exception.
KILL_RACE = 0.5
SHUTDOWN_LIMIT = 10.0  # seconds from SIGTERM to exit: a container runtime's grace
RESOLVED = "RESOLVED"
META_MARK = "Polaris API"


def posted_at(message: StoredMessage) -> float:
    return float(message.ts)


def is_resolved(message: StoredMessage) -> bool:
    return message.edited >= 1 and RESOLVED in message.text


@dataclass
class Incident:
    window: Window
    posts: list[StoredMessage]
    explained: bool = False  # the extra post is the documented SIGKILL race

    @property
    def resolved(self) -> bool:
        return any(is_resolved(p) for p in self.posts)


@dataclass
class LogFindings:
    tracebacks: list[str] = field(default_factory=list)  # first lines, with the file
    errors: list[str] = field(default_factory=list)  # error-level events


@dataclass
class ChaosReport:
    incidents: list[Incident]
    spurious: list[str]  # one line per spurious post: why, and its text
    meta_posts: list[StoredMessage]
    meta_per_fault: list[tuple[Fault, int]]
    record: ChaosLog
    logs: LogFindings

    # ---- figures -----------------------------------------------------------------------

    @property
    def expected(self) -> int:
        return len(self.incidents)

    @property
    def delivered(self) -> int:
        return sum(1 for i in self.incidents if i.posts)

    @property
    def lost(self) -> list[Incident]:
        return [i for i in self.incidents if not i.posts]

    @property
    def duplicated(self) -> list[Incident]:
        """Duplicates other than the documented SIGKILL race."""
        return [i for i in self.incidents if len(i.posts) > 1 and not i.explained]

    @property
    def explained_duplicates(self) -> list[Incident]:
        return [i for i in self.incidents if len(i.posts) > 1 and i.explained]

    @property
    def resolves_delivered(self) -> int:
        return sum(1 for i in self.incidents if i.posts and i.resolved)

    @property
    def unresolved(self) -> list[Incident]:
        return [i for i in self.incidents if i.posts and not i.resolved]

    @property
    def repeated_edits(self) -> int:
        """Resolve edits beyond one per post (harmless, but not once)."""
        return sum(max(p.edited - 1, 0) for i in self.incidents for p in i.posts)

    @property
    def meta_resolved(self) -> int:
        return sum(1 for m in self.meta_posts if is_resolved(m))

    @property
    def meta_over(self) -> list[Fault]:
        """Polaris faults that got more than one meta-alert."""
        return [fault for fault, n in self.meta_per_fault if n > 1]

    @property
    def sigterms(self) -> list[tuple[int | None, float]]:
        return [(s.exit_code, s.seconds) for s in self.record.stops if s.how == "SIGTERM"]

    @property
    def restarts_survived(self) -> int:
        return sum(1 for s in self.record.stops if s.restarted)

    @property
    def restarts(self) -> int:
        """Stops the bot was meant to come back from (the end of the run is not one)."""
        return sum(1 for s in self.record.stops if not s.final)

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs, in the order of the README table."""
        stops = [s for s in self.record.stops if not s.final]
        kills = sum(1 for s in stops if s.how == "SIGKILL")
        terms = self.sigterms
        polaris = [f for f in self.record.faults if f.target == "polaris"]
        slack = [f for f in self.record.faults if f.target == "slack"]
        explained = len(self.explained_duplicates)
        outbox = self.record.outbox_at_end
        return [
            ("incidents expected", str(self.expected)),
            ("incidents delivered", str(self.delivered)),
            ("incidents lost", str(len(self.lost))),
            (
                "incidents duplicated",
                f"{len(self.duplicated)}" + (f" (+{explained} SIGKILL race)" if explained else ""),
            ),
            ("resolves delivered / expected", f"{self.resolves_delivered} / {self.delivered}"),
            ("extra resolve edits", str(self.repeated_edits)),
            ("spurious posts", str(len(self.spurious))),
            (
                "meta-alerts (resolved)",
                f"{len(self.meta_posts)} ({self.meta_resolved}) for {len(polaris)} Polaris faults",
            ),
            (
                "restarts survived",
                f"{self.restarts_survived} of {len(stops)} "
                f"({kills} SIGKILL, {len(stops) - kills} SIGTERM)",
            ),
            ("SIGTERM exit codes (last: end of run)", ", ".join(str(c) for c, _ in terms) or "-"),
            ("SIGTERM shutdown seconds", ", ".join(f"{s:.2f}" for _, s in terms) or "-"),
            ("crashes (exits not asked for)", str(len(self.record.crashes))),
            ("tracebacks in the bot's logs", str(len(self.logs.tracebacks))),
            ("error events in the bot's logs", str(len(self.logs.errors))),
            ("Polaris faults injected", f"{len(polaris)}: {', '.join(f.kind for f in polaris)}"),
            ("Slack faults injected", f"{len(slack)}: {', '.join(f.kind for f in slack)}"),
            ("outbox size at the end", "?" if outbox is None else f"{outbox:g}"),
            ("run time", f"{self.record.seconds:.1f} s"),
        ]

    def markdown(self) -> str:
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        return "\n".join(lines)

    def problems(self) -> list[str]:
        """Human-readable details of everything that went wrong, for a failing test."""
        out = [f"LOST {i.window.job_id} ({i.window.note})" for i in self.lost]
        for i in self.duplicated + self.explained_duplicates:
            times = ", ".join(p.ts for p in i.posts)
            tag = "DUPLICATED (SIGKILL race)" if i.explained else "DUPLICATED"
            out.append(f"{tag} {i.window.job_id} ({i.window.note}): posts at {times}")
        out += [f"UNRESOLVED {i.window.job_id} ({i.window.note})" for i in self.unresolved]
        out += [f"SPURIOUS {line}" for line in self.spurious]
        out += [f"TOO MANY META-ALERTS for {f.kind} at {f.started:.2f}" for f in self.meta_over]
        out += [
            f"META UNRESOLVED {m.ts}: {m.text[:120]}" for m in self.meta_posts if not is_resolved(m)
        ]
        out += [
            f"SIGTERM ({s.note}) exit {s.exit_code} after {s.seconds:.2f}s"
            for s in self.record.stops
            if s.how == "SIGTERM" and (s.exit_code != 0 or s.seconds > SHUTDOWN_LIMIT)
        ]
        out += [
            f"NOT BACK after {s.how} ({s.note})"
            for s in self.record.stops
            if not s.final and not s.restarted
        ]
        out += [f"CRASH exit {c.exit_code} ({c.log.name}):\n{c.tail}" for c in self.record.crashes]
        out += [f"TRACEBACK {t}" for t in self.logs.tracebacks]
        out += [f"ERROR EVENT {e}" for e in self.logs.errors]
        if self.record.outbox_at_end != 0:
            out.append(f"OUTBOX at the end: {self.record.outbox_at_end}")
        return out


def account(
    record: ChaosLog,
    messages: Iterable[StoredMessage],
    *,
    controls: Sequence[str],
    grace: float,
) -> ChaosReport:
    """Hold Slack's top-level messages against the windows, faults and stops of ``record``."""
    top = sorted((m for m in messages if m.thread_ts is None), key=posted_at)
    windows_of: dict[str, list[Window]] = {}
    for window in record.windows:
        windows_of.setdefault(window.job_id, []).append(window)
    incidents = {id(w): Incident(w, []) for w in record.windows}
    spurious: list[str] = []
    meta: list[StoredMessage] = []
    for message in top:
        at = posted_at(message)
        job = next((j for j in [*windows_of, *controls] if j in message.text), None)
        if job is None:
            if META_MARK in message.text:
                meta.append(message)
            else:
                spurious.append(f"{message.ts} unattributable: {message.text[:120]}")
            continue
        if message.edited == 0 and RESOLVED in message.text:
            # A resolve posted top level: its incident's own post was missing.
            spurious.append(f"{message.ts} resolve without its post: {message.text[:120]}")
            continue
        found = next(
            (
                w
                for w in windows_of.get(job, [])
                if w.opened <= at <= (w.closed if w.closed is not None else at) + grace
            ),
            None,
        )
        if found is None:
            where = "a job that never failed" if job in controls else "outside its window"
            spurious.append(f"{message.ts} about {where}: {message.text[:120]}")
            continue
        incidents[id(found)].posts.append(message)
    kills = [s.at for s in record.stops if s.how == "SIGKILL"]
    for incident in incidents.values():
        incident.explained = len(incident.posts) == 2 and any(
            k - KILL_RACE <= posted_at(incident.posts[0]) <= k + 0.1 < posted_at(incident.posts[1])
            for k in kills
        )
    return ChaosReport(
        incidents=list(incidents.values()),
        spurious=spurious,
        meta_posts=meta,
        meta_per_fault=_meta_per_fault(record.faults, meta, grace, spurious),
        record=record,
        logs=scan_logs(record.logs),
    )


def _meta_per_fault(
    faults: Sequence[Fault], meta: Sequence[StoredMessage], grace: float, spurious: list[str]
) -> list[tuple[Fault, int]]:
    """Each meta-alert goes to the latest Polaris fault that began before it was posted."""
    polaris = sorted((f for f in faults if f.target == "polaris"), key=lambda f: f.started)
    counts = {id(f): 0 for f in polaris}
    for message in meta:
        at = posted_at(message)
        owner = None
        for fault in polaris:
            if fault.started <= at <= (fault.ended if fault.ended is not None else at) + grace:
                owner = fault
        if owner is None:
            spurious.append(
                f"{message.ts} meta-alert outside any Polaris fault: {message.text[:120]}"
            )
        else:
            counts[id(owner)] += 1
    return [(f, counts[id(f)]) for f in polaris]


def scan_logs(paths: Iterable[Path]) -> LogFindings:
    """Tracebacks and error-level events in the bot's JSON logs (one file per start)."""
    findings = LogFindings()
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            where = f"{path.name}:{number}"
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                if event.get("exception"):
                    first = str(event["exception"]).strip().splitlines()[-1]
                    findings.tracebacks.append(f"{where} {event.get('event')}: {first}")
                elif event.get("level") in ("error", "critical"):
                    findings.errors.append(f"{where} {event.get('event')}")
            elif "Traceback (most recent call last)" in line:
                tail = next((x for x in lines[number:] if x and not x.startswith(" ")), "")
                findings.tracebacks.append(f"{where} {tail}")
    return findings
