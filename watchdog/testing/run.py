"""``polaris-watchdog test-rules FILE``: unit tests for rules, like ``promtool test rules``.

Each case of a test file (see :mod:`watchdog.testing.file`) is replayed tick by tick
through the same pure steps the watch loop takes: the jobs' metrics are "fetched" for
the jobs :func:`~watchdog.watch.plan.metric_targets` picks, recorded into a
:class:`~watchdog.watch.samples.SampleBook`, and every rule is evaluated on every job with
:func:`~watchdog.watch.verdicts.verdict_for` and moved through its lifecycle with
:func:`~watchdog.watch.lifecycle.evolve`. So a passing test says what the bot would do, not what
a second implementation of the rules thinks. Silences are out of scope.

The report says ``PASS  name`` or ``FAIL  name`` with, for each failed expectation, what
was missing or unexpected and what the alert was doing instead, then ``N passed, M failed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from watchdog.domain.alerts import DEFAULT_PROJECT, AlertState, Phase, Reason, fingerprint
from watchdog.polaris.models import Job
from watchdog.rules.durations import format_duration
from watchdog.rules.load import load_ruleset
from watchdog.rules.model import Rule
from watchdog.rules.problems import Problem, RulesFileError, did_you_mean
from watchdog.rules.ruleset import RuleSet
from watchdog.testing.file import (
    MAX_TICKS,
    CaseSpec,
    ExpectSpec,
    JobSpec,
    RuleTestFile,
    RuleTestFileError,
    load_test_file,
)
from watchdog.watch.lifecycle import Timing, Verdict, evolve
from watchdog.watch.plan import metric_targets, plan
from watchdog.watch.samples import SampleBook, capacity_for, retention_for
from watchdog.watch.verdicts import verdict_for

__all__ = ["T0", "CaseRun", "Snapshot", "check_case", "run_test_file"]

#: The first tick of every case (2023-11-14 22:13:20 UTC): fixed, so runs are repeatable.
T0 = 1_700_000_000.0
_KINDS = tuple(reason.value for reason in Reason)
_T = TypeVar("_T")


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


def _at(series: Sequence[_T], tick: int) -> _T:
    """The series' value at ``tick``: a series shorter than the run holds its last value."""
    return series[min(tick, len(series) - 1)]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


@dataclass(frozen=True)
class Snapshot:
    """The alerts right after one tick, by label ``rule/job``."""

    firing: dict[str, AlertState]
    pending: dict[str, AlertState]
    notified: frozenset[str]  # "kind:rule/job" sent at this tick


class CaseRun:
    """One case replayed through the watch loop's pure steps, a tick at a time."""

    def __init__(self, case: CaseSpec, ruleset: RuleSet, interval: float) -> None:
        self._jobs = case.job
        self._by_id = {job.id: job for job in case.job}
        self._ruleset = ruleset
        self._interval = interval
        self._plan = plan(ruleset.rules)
        self._timings = {rule.name: Timing.of(rule) for rule in ruleset.rules}
        # Sized as the bot sizes it, so a too-short history shows up here as well.
        self._book = SampleBook(capacity_for(ruleset.max_window, interval))
        self._seen: dict[str, tuple[Any, float]] = {}  # job id → (statuses, lastUpdated)
        self.alerts: dict[str, AlertState] = {}  # by fingerprint, as the watcher keeps them
        self.last_sent: dict[str, tuple[str, float]] = {}  # label → (kind, time)
        self.ticks = 0

    def label(self, state: AlertState) -> str:
        return f"{state.rule}/{self._by_id[state.job_id].name}"

    def _job(self, spec: JobSpec, tick: int, now: float) -> Job | None:
        execution = _at(spec.execution, tick)
        if execution is None:
            return None  # not listed: the job does not exist (yet, or any more)
        health = _at(spec.health, tick)
        seen = self._seen.get(spec.id)
        if seen is None:
            updated = T0 - spec.updated_ago if tick == 0 else now
        else:
            # Polaris bumps lastUpdatedTimestamp when the job's state changes.
            updated = seen[1] if seen[0] == (execution, health) else now
        self._seen[spec.id] = ((execution, health), updated)
        raw: dict[str, Any] = {
            "id": spec.id,
            "type": spec.type,
            "executionStatus": execution,
            "createdTimestamp": _iso(T0 - spec.updated_ago),
            "lastUpdatedTimestamp": _iso(updated),
        }
        if health is not None:
            status, code = health
            raw["health"] = {"status": status, **({"code": code} if code else {})}
        if spec.table is not None:
            raw["target"] = {"type": "table", "tableName": spec.table}
        if spec.max_parse_exceptions is not None:
            raw["maxParseExceptions"] = spec.max_parse_exceptions
        return Job.model_validate(raw)

    def tick(self) -> Snapshot:
        """Run the next tick, as :meth:`watchdog.watch.loop.Watcher.tick` would."""
        tick, self.ticks = self.ticks, self.ticks + 1
        now = T0 + tick * self._interval
        jobs = {job.id: job for spec in self._jobs if (job := self._job(spec, tick, now))}
        targets = metric_targets(self._ruleset.metric_rules, jobs.values(), now)
        metrics_ok: set[str] = set()
        for job_id, wanted in targets.items():
            values = {name: _at(s, tick) for name, s in self._by_id[job_id].metrics.items()}
            if all(value is None for value in values.values()):
                continue  # no sample at all this tick: the metrics fetch failed
            metrics_ok.add(job_id)
            for metric in wanted:
                value = values.get(metric)
                if value is not None:
                    self._book.record(job_id, metric, now, value)
        notified: set[str] = set()
        for rule in self._ruleset.rules:
            if rule.name not in self._plan.rule_queries:
                continue  # the rule can match no job: the watcher never lists any for it
            for job in jobs.values():
                prev = self.alerts.get(fingerprint(DEFAULT_PROJECT, rule.name, job.id))
                verdict = verdict_for(rule, job, prev, self._book, now, metrics_ok)
                if verdict is not None:
                    self._settle(rule, prev, verdict, now, notified)
            for prev in [a for a in self.alerts.values() if a.rule == rule.name]:
                if prev.job_id not in jobs:  # Polaris answers 404 for it now
                    gone = Verdict(prev.job, None, gone="job no longer exists")
                    self._settle(rule, prev, gone, now, notified)
        if self._plan.queries:
            # As the watcher does: forget jobs no metric rule has watched for a retention.
            keep_for = retention_for(self._ruleset.max_window, self._interval)
            self._book.expire(targets, now, keep_for)
        by_phase: dict[Phase, dict[str, AlertState]] = {Phase.FIRING: {}, Phase.PENDING: {}}
        for state in self.alerts.values():
            by_phase.get(state.phase, {})[self.label(state)] = state
        return Snapshot(by_phase[Phase.FIRING], by_phase[Phase.PENDING], frozenset(notified))

    def _settle(
        self, rule: Rule, prev: AlertState | None, verdict: Verdict, now: float, sent: set[str]
    ) -> None:
        timing = self._timings[rule.name]
        step = evolve(prev, verdict, rule=rule.name, severity=rule.severity, timing=timing, now=now)
        key = fingerprint(DEFAULT_PROJECT, rule.name, verdict.job.job_id)
        if step.state is None:
            self.alerts.pop(key, None)
        else:
            self.alerts[key] = step.state
        if step.reason is not None and step.announced is not None:
            label = self.label(step.announced)
            sent.add(f"{step.reason.value}:{label}")
            self.last_sent[label] = (step.reason.value, now)


# ---- checking expectations ----------------------------------------------------------------


def check_case(case: CaseSpec, ruleset: RuleSet, interval: float) -> list[str]:
    """Replay ``case``; the report lines of its failed expectations (empty: it passed)."""
    run = CaseRun(case, ruleset, interval)
    lines: list[str] = []
    snapshot: Snapshot | None = None
    for expect in sorted(case.expect, key=lambda e: e.at):
        while run.ticks <= round(expect.at / interval):
            snapshot = run.tick()
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
        doing = f"firing since {_ago(state.fired_at or state.since)}"
        doing += f": {summary}" if summary and not kind else ""
    elif alert in snapshot.pending:
        doing = f"pending since {_ago(snapshot.pending[alert].since)}"
    else:
        doing = "neither pending nor firing"
    if not kind:
        return doing
    last = run.last_sent.get(alert)
    sent = f"last notification: {last[0]} at {_ago(last[1])}" if last else "never notified"
    return f"{doing}; {sent}"


def _ago(seconds: float) -> str:
    """A time as the test file writes it: since the first tick."""
    return format_duration(seconds - T0)
