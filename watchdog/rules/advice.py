"""Warnings about a valid rules file: settings that work, but not the way they read.

``polaris-watchdog check`` prints them as ``FILE:LINE: warning: …`` and still exits 0.
Today one: a Polaris request that is retried (``attempts`` × ``timeout`` plus the backoff
between attempts, :class:`~watchdog.polaris.retry.RetryPolicy`) can outlast the tick's
deadline — one slow request then takes the whole tick and its listing is reported
incomplete — or the health window (three intervals, a minute at least), after which
``/healthz`` calls the replica stuck while it is only waiting for Polaris.
"""

from __future__ import annotations

from watchdog.polaris.retry import RetryPolicy
from watchdog.rules.durations import format_duration
from watchdog.rules.problems import Problem
from watchdog.rules.ruleset import RuleSet
from watchdog.rules.tables import WatchSettings
from watchdog.rules.toml_lines import TomlLines


def worst_request(watch: WatchSettings, retry: RetryPolicy) -> tuple[float, float]:
    """The longest one request can take with its retries, and the backoff part of it
    (the longest the policy's own backoff waits; a Retry-After from Polaris can add more)."""
    backoff = sum(min(retry.cap, retry.base * 2**k) for k in range(retry.attempts - 1))
    return retry.attempts * watch.timeout + backoff, backoff


def warnings(path: str, rules: RuleSet, text: str, retry: RetryPolicy) -> list[Problem]:
    """Warnings about ``rules`` (parsed from ``text`` at ``path``)."""
    watch = rules.watch
    worst, backoff = worst_request(watch, retry)
    limits = [
        ("the tick deadline", watch.tick_deadline, "deadline"),
        ("the health window (3 × interval, 60s at least)", watch.health_window, "interval"),
    ]
    exceeded = [(name, limit, key) for name, limit, key in limits if worst > limit]
    if not exceeded:
        return []
    name, limit, key = min(exceeded, key=lambda item: item[1])
    line = TomlLines(text).nearest_line(("watch", "timeout"))
    message = (
        f"warning: one Polaris request can take {_seconds(worst)} ({retry.attempts} attempts "
        f"× timeout {format_duration(watch.timeout)} + {_seconds(backoff)} backoff), longer "
        f"than {name} ({_seconds(limit)}): a slow Polaris "
        + (
            "makes a whole tick's listing incomplete"
            if key == "deadline"
            else "makes /healthz call the bot stuck"
        )
        + f"; lower timeout or raise {key}"
    )
    return [Problem(path, line, message)]


def _seconds(value: float) -> str:
    return f"{value:.4g}s"
