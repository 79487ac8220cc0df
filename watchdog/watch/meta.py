"""The meta-alert of a project: what keeps the bot from watching it, in words.

One alert per project (rule ``_polaris``, job ``-``) says the bot cannot watch: Polaris
cannot be reached or rejects the key, job listings do not finish, or the metric rules
have no fresh data. The same sentences are the project's problems in ``/healthz``. Pure:
the loop passes what it observed and the sweep's state.
"""

from __future__ import annotations

import time

from watchdog.domain.alerts import META_JOB, Condition, JobFacts
from watchdog.polaris.errors import PolarisAuthError, PolarisListingIncompleteError
from watchdog.watch.lifecycle import Verdict
from watchdog.watch.observe import Observation
from watchdog.watch.sweep import MetricsSweep

#: Problem kinds, in the order the meta-alert names them.
KINDS = ("polaris", "listing", "metrics")
#: What a change of the meta-alert's subject is called (worth a thread reply).
_CODES = {"polaris": "unreachable", "listing": "listing_incomplete", "metrics": "metrics_blind"}


def problems(
    seen: Observation,
    sweep: MetricsSweep,
    now: float,
    no_data_after: float,
    data_since: float | None,
) -> dict[str, str | None]:
    """Each problem kind's sentence (None: no such problem) after a tick."""
    failures = seen.failures
    when = f" since {time.strftime('%H:%M:%S UTC', time.gmtime(data_since))}" if data_since else ""
    polaris: str | None = None
    listing: str | None = None
    if seen.results and len(failures) == len(seen.results):
        auth = next((f for f in failures if isinstance(f, PolarisAuthError)), None)
        if auth is not None:
            polaris = f"Polaris rejects the API key{when}: {auth}"
        elif not all(isinstance(f, PolarisListingIncompleteError) for f in failures):
            polaris = f"cannot reach Polaris{when}: {failures[0]}"
    if polaris is None and failures:
        shown = next(
            (f for f in failures if isinstance(f, PolarisListingIncompleteError)), failures[0]
        )
        listing = (
            f"{len(failures)} of {len(seen.results)} job listings could not be read "
            f"({shown}): their rules are blind"
        )
    return {"polaris": polaris, "listing": listing, "metrics": _metrics(sweep, now, no_data_after)}


def _metrics(sweep: MetricsSweep, now: float, no_data_after: float) -> str | None:
    last = sweep.last_pass
    if last is not None and last.blind:
        return (
            f"Polaris lists jobs but does not answer their metrics ({last.failed} failed, "
            f"{last.bad} unreadable of {last.attempted} in the last sweep): metric "
            "rules are blind"
        )
    bad = sweep.bad_jobs
    stale = sweep.staleness(now, (job for job in sweep.targets if job not in bad))
    if stale > no_data_after:
        period = sweep.period
        took = f"{period:.0f}s" if period is not None else "not one yet"
        return (
            f"the oldest metrics sample is {stale:.0f}s old (a sweep over "
            f"{len(sweep.targets)} jobs takes {took}): metric rules are blind — raise "
            "max_rate or concurrency if Polaris allows"
        )
    if bad and (stale := sweep.staleness(now, bad)) > no_data_after:
        # Not slowness (raising max_rate would not help): data that cannot be counters.
        return (
            f"Polaris answers metrics no counter can have for {len(bad)} job(s) (e.g. "
            f"{min(bad)}, for {stale:.0f}s): their metric rules are blind, the other jobs' "
            "are not"
        )
    return None


def verdict(project: str, problems: dict[str, str | None]) -> Verdict:
    """The meta-alert's verdict: active with the first problem's sentence, else clear."""
    kind = next((k for k in KINDS if problems.get(k)), None)
    if kind is None:
        facts = JobFacts(job_id=META_JOB, table=None, type="polaris")
        return Verdict(facts, Condition(False), clear_reason="Polaris answers again")
    facts = JobFacts(job_id=META_JOB, table=None, type="polaris", health_code=_CODES[kind])
    summary = f"[{project}] {problems[kind]}"
    return Verdict(facts, Condition(True, summary=summary[:2000]))
