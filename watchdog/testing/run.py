"""``polaris-watchdog test-rules FILE``: unit tests for rules, like ``promtool test rules``.

Each case of a test file (see :mod:`watchdog.testing.file`) is replayed tick by tick
through the watch loop's own code: an in-memory Polaris (:mod:`watchdog.testing.polaris`)
shows the case's jobs at each tick, and :func:`watchdog.watch.tick.judge_tick` lists them,
hands the metric targets to a real :class:`~watchdog.watch.sweep.MetricsSweep` (one pass
per tick), and judges every rule into a tally, exactly as the live loop does before it
commits. So a passing test says what the bot would do, not what a second implementation
of the rules thinks. Maintenance windows (the rules file's and the case's own) and the
case's acknowledgements go into the judgement as the live loop passes them; silences are
out of scope.

The report says ``PASS  name`` or ``FAIL  name`` with, for each failed expectation, what
was missing or unexpected and what the alert was doing instead, then ``N passed, M failed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from watchdog.domain.alerts import AlertState, Phase, Reason
from watchdog.domain.oncall import Ack
from watchdog.domain.samples import SampleBook, capacity_for, retention_for
from watchdog.rules.durations import format_duration
from watchdog.rules.load import load_ruleset
from watchdog.rules.maintenance import unknown_names
from watchdog.rules.problems import Problem, RulesFileError, did_you_mean
from watchdog.rules.ruleset import RuleSet
from watchdog.testing.file import (
    MAX_TICKS,
    CaseSpec,
    ExpectSpec,
    RuleTestFile,
    RuleTestFileError,
    load_test_file,
)
from watchdog.testing.polaris import CasePolaris
from watchdog.watch.judge import Tally
from watchdog.watch.sweep import MetricsSweep
from watchdog.watch.tick import TickContext, judge_tick

__all__ = ["T0", "CaseAcks", "CaseRun", "Snapshot", "check_case", "run_test_file"]

#: The first tick of every case (2023-11-14 22:13:20 UTC): fixed, so runs are repeatable.
T0 = 1_700_000_000.0
_KINDS = tuple(reason.value for reason in Reason)


def run_test_file(path: Path, out: TextIO) -> int:
    """Run the tests in ``path``, report to ``out``; 0 all pass, 1 a failure, 2 a broken file."""
    try:
        tests = load_test_file(path)
        ruleset = _load_rules(tests)
        problems = list(_mismatches(tests, ruleset))
        if problems:
            raise RuleTestFileError(sorted(problems, key=lambda p: (p.line, p.message)))
    except RuleTestFileError as error:
        for problem in error.problems:
            print(problem, file=out)
        return 2
    failed = 0
    for case in tests.cases:
        lines = check_case(case, ruleset, _interval(tests, case, ruleset))
        failed += bool(lines)
        print(f"{'FAIL' if lines else 'PASS'}  {case.name}", file=out)
        for line in lines:
            print(line, file=out)
    print(f"{len(tests.cases) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def _interval(tests: RuleTestFile, case: CaseSpec, ruleset: RuleSet) -> float:
    return case.interval or tests.interval or ruleset.watch.interval


def _load_rules(tests: RuleTestFile) -> RuleSet:
    try:
        return load_ruleset(tests.rules)
    except RulesFileError as error:
        head = tests.problem(("rules",), f"the rules file {str(tests.rules)!r} cannot be used:")
        raise RuleTestFileError([head, *error.problems]) from None


def _mismatches(tests: RuleTestFile, ruleset: RuleSet) -> Iterator[Problem]:
    """What the test file's shape cannot show alone: ticks, and names of rules and jobs."""
    rules = [rule.name for rule in ruleset.rules]
    for index, case in enumerate(tests.cases):
        interval = _interval(tests, case, ruleset)
        jobs = [job.name for job in case.job]
        where = f"case {case.name!r}: "
        for number, window in enumerate(case.maintenance):
            for key, problem in unknown_names(window, rules, ruleset.project_names):
                at_key = ("case", index, "maintenance", number, *key)
                yield tests.problem(at_key, f"{where}maintenance {window.name!r}: {problem}")
        for number, ack in enumerate(case.ack):
            bad = _bad_alert(ack.alert, False, rules, jobs)
            if bad is not None:
                yield tests.problem(("case", index, "ack", number, "alert"), f"{where}ack: {bad}")
        for number, expect in enumerate(case.expect):
            at: tuple[str | int, ...] = ("case", index, "expect", number)
            ticks = expect.at / interval
            if abs(ticks - round(ticks)) > 1e-9:
                near = " or ".join(
                    format_duration(n * interval) for n in (int(ticks), int(ticks) + 1)
                )
                yield tests.problem(
                    (*at, "at"),
                    f"{where}at {format_duration(expect.at)} is not on a tick: ticks are every "
                    f"{format_duration(interval)} (try {near})",
                )
            elif round(ticks) >= MAX_TICKS:
                yield tests.problem(
                    (*at, "at"), f"{where}at: a case runs at most {MAX_TICKS:,} ticks"
                )
            for kind in ("firing", "pending", "notified"):
                for item, text in enumerate(getattr(expect, kind) or ()):
                    bad = _bad_alert(text, kind == "notified", rules, jobs)
                    if bad is not None:
                        yield tests.problem((*at, kind, item), f"{where}{kind}: {bad}")


def _bad_alert(text: str, with_kind: bool, rules: list[str], jobs: list[str]) -> str | None:
    alert = text
    if with_kind:
        reason, colon, alert = text.partition(":")
        if not colon or reason not in _KINDS:
            hint = "as in 'new:rule/job'" if not colon else did_you_mean(reason, _KINDS)
            return f"{text!r} must start with one of {', '.join(_KINDS)} and ':'" + (
                f" ({hint})" if hint else ""
            )
    rule, slash, job = alert.partition("/")
    if not slash:
        return f"{text!r} must name a rule and a job as 'rule/job'"
    for what, name, known in (("rule", rule, rules), ("job", job, jobs)):
        if name not in known:
            hint = did_you_mean(name, known) or f"known: {', '.join(known) or 'none'}"
            return f"unknown {what} {name!r} in {text!r} ({hint})"
    return None


# ---- replaying a case ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The alerts right after one tick, by label ``rule/job``."""

    firing: dict[str, AlertState]
    pending: dict[str, AlertState]
    notified: frozenset[str]  # "kind:rule/job" sent at this tick


class CaseRun:
    """One case replayed through the watch loop's own code, a tick at a time.

    Each tick is :func:`~watchdog.watch.tick.judge_tick` over an in-memory Polaris that
    shows the case's jobs at that tick, with one sweep pass over the metric targets just
    before the judgement (the live sweep's cadence, collapsed onto the tick); the tally is
    adopted as the loop adopts it after a commit.
    """

    def __init__(self, case: CaseSpec, ruleset: RuleSet, interval: float) -> None:
        self._by_id = {job.id: job for job in case.job}
        self._interval = interval
        self.start = case.start.timestamp() if case.start is not None else T0
        self._clock = self.start
        project = ruleset.project_names[0]
        rules = ruleset.rules_for(project)
        watch = ruleset.watch.model_copy(update={"interval": interval})
        spec = ruleset.project(project)
        windows = (*ruleset.maintenance, *case.maintenance)
        channel = spec.channel if spec else None
        self._context = TickContext.planned(project, rules, watch, channel, windows)
        self.operator = CaseAcks(case, self.start)
        self._acks: dict[str, Ack] = {}  # by incident, as the store keeps them
        self._polaris = CasePolaris(case.job, self.start)
        # Sized as the bot sizes it, so a too-short history shows up here as well.
        book = SampleBook(capacity_for(ruleset.max_window, interval))
        self._sweep = MetricsSweep(
            self._polaris, book, interval=lambda: interval, clock=lambda: self._clock
        )
        self._keep_for = retention_for(ruleset.max_window, interval)
        self.alerts: dict[str, AlertState] = {}  # by fingerprint, as the watcher keeps them
        self.last_sent: dict[str, tuple[str, float]] = {}  # label → (kind, time)
        self.ticks = 0

    def label(self, state: AlertState) -> str:
        return f"{state.rule}/{self._by_id[state.job_id].name}"

    async def tick(self) -> Snapshot:
        """Run the next tick, as :meth:`watchdog.watch.loop.Watcher.tick` would."""
        tick, self.ticks = self.ticks, self.ticks + 1
        now = self._clock = self.start + tick * self._interval
        self._polaris.move_to(tick, now)
        firing = {self.label(a): a for a in self.alerts.values() if a.phase is Phase.FIRING}
        made, withdrawn = self.operator.due(now, firing)
        self._acks.update((ack.incident_id, ack) for ack in made)
        for incident in withdrawn:
            self._acks.pop(incident, None)
        notified: set[str] = set()

        async def adopt(tally: Tally) -> None:
            # As the loop adopts a tally once its commit went through.
            self.alerts = tally.alerts
            for note in tally.outgoing:
                label = self.label(note.alert)
                notified.add(f"{note.reason.value}:{label}")
                self.last_sent[label] = (note.reason.value, now)

        tally, seen = await judge_tick(
            self._polaris,
            self._context,
            self._sweep,
            self.alerts,
            (),
            now,
            acks=list(self._acks.values()),
            listings_judged=adopt,
            before_judging=self._sweep.sweep_once,
        )
        await adopt(tally)
        if self._context.metric_plan.queries:
            # As the watcher does: forget jobs no metric rule has watched for a retention.
            self._sweep.forget(self._sweep.book.expire(seen.targets, now, self._keep_for))
        by_phase: dict[Phase, dict[str, AlertState]] = {Phase.FIRING: {}, Phase.PENDING: {}}
        for state in self.alerts.values():
            by_phase.get(state.phase, {})[self.label(state)] = state
        return Snapshot(by_phase[Phase.FIRING], by_phase[Phase.PENDING], frozenset(notified))


class CaseAcks:
    """The case's acknowledgements, made and withdrawn as an operator would between two
    ticks: an ack holds the incident firing (as the last tick left it) at its ``at``, and
    none when the alert is not firing then. ``test-rules`` keeps them as the store would;
    a live replay writes them to its store."""

    def __init__(self, case: CaseSpec, start: float) -> None:
        self._specs = case.ack
        self._start = start
        self._held: dict[int, str | None] = {}  # case ack → the incident it holds, if any

    def due(self, now: float, firing: Mapping[str, AlertState]) -> tuple[list[Ack], list[str]]:
        """Before the tick at ``now``, with ``firing`` the firing alerts by label
        ``rule/job``: the acks to make, and the incidents whose ack is withdrawn."""
        offset = now - self._start
        made: list[Ack] = []
        withdrawn: list[str] = []
        for index, spec in enumerate(self._specs):
            if index not in self._held:
                if offset >= spec.at:
                    alert = firing.get(spec.alert)
                    self._held[index] = alert.incident_id if alert is not None else None
                    if alert is not None:
                        made.append(Ack.of(alert, "test-rules", now))
            elif spec.until is not None and offset >= spec.until:
                incident = self._held[index]
                if incident is not None:
                    withdrawn.append(incident)
                    self._held[index] = None
        return made, withdrawn


# ---- checking expectations ----------------------------------------------------------------


def check_case(case: CaseSpec, ruleset: RuleSet, interval: float) -> list[str]:
    """Replay ``case``; the report lines of its failed expectations (empty: it passed)."""
    return asyncio.run(_check_case(case, ruleset, interval))


async def _check_case(case: CaseSpec, ruleset: RuleSet, interval: float) -> list[str]:
    run = CaseRun(case, ruleset, interval)
    lines: list[str] = []
    snapshot: Snapshot | None = None
    for expect in sorted(case.expect, key=lambda e: e.at):
        while run.ticks <= round(expect.at / interval):
            snapshot = await run.tick()
        assert snapshot is not None  # the loop ran at least once: ticks start at 0
        lines.extend(_compare(run, expect, snapshot))
    return lines


def _compare(run: CaseRun, expect: ExpectSpec, snapshot: Snapshot) -> list[str]:
    found: list[str] = []
    got_by_kind = {
        "firing": set(snapshot.firing),
        "pending": set(snapshot.pending),
        "notified": set(snapshot.notified),
    }
    for kind, got in got_by_kind.items():
        wanted: tuple[str, ...] | None = getattr(expect, kind)
        if wanted is None:
            continue
        for label in sorted(set(wanted) - got):
            found.append(f"{'missing ' + kind:<20} {label}  ({_explain(run, snapshot, label)})")
        for label in sorted(got - set(wanted)):
            found.append(f"{'unexpected ' + kind:<20} {label}  ({_explain(run, snapshot, label)})")
    if not found:
        return []
    return [f"  at {format_duration(expect.at)}:", *(f"    {line}" for line in found)]


def _explain(run: CaseRun, snapshot: Snapshot, label: str) -> str:
    """What the alert behind ``label`` (``rule/job`` or ``kind:rule/job``) was doing."""
    kind, _, alert = label.rpartition(":")
    if alert in snapshot.firing:
        state = snapshot.firing[alert]
        summary = state.condition.summary
        doing = f"firing since {_ago(run, state.fired_at or state.since)}"
        doing += f": {summary}" if summary and not kind else ""
    elif alert in snapshot.pending:
        doing = f"pending since {_ago(run, snapshot.pending[alert].since)}"
    else:
        doing = "neither pending nor firing"
    if not kind:
        return doing
    last = run.last_sent.get(alert)
    sent = f"last notification: {last[0]} at {_ago(run, last[1])}" if last else "never notified"
    return f"{doing}; {sent}"


def _ago(run: CaseRun, seconds: float) -> str:
    """A time as the test file writes it: since the first tick."""
    return format_duration(seconds - run.start)
