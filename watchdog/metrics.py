"""Prometheus metrics of one bot, on a registry of its own.

One :class:`BotMetrics` is created at start-up and passed to whoever counts something;
a private ``CollectorRegistry`` (not the library's global one) keeps tests and several
bots in one process apart. ``GET /metrics`` renders :meth:`BotMetrics.render`. Everything
about watching carries a ``project`` label (``default`` in single-project mode).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class BotMetrics:
    def __init__(self) -> None:
        self._firing: dict[str, set[str]] = {}  # project -> rules with a firing gauge
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ticks = Counter(
            "watchdog_ticks",
            "Listing ticks completed, by project and outcome (ok, partial, failed).",
            ["project", "outcome"],
            registry=r,
        )
        self.tick_seconds = Histogram(
            "watchdog_tick_duration_seconds",
            "Wall time of one listing tick (listings, judgement, commit).",
            ["project"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.last_tick = Gauge(
            "watchdog_last_tick_timestamp_seconds",
            "Unix time of the last completed listing tick, by project.",
            ["project"],
            registry=r,
        )
        self.polaris_requests = Counter(
            "watchdog_polaris_requests",
            "HTTP attempts to Polaris, by endpoint and outcome "
            "(HTTP status, timeout, connection, malformed).",
            ["project", "endpoint", "outcome"],
            registry=r,
        )
        self.polaris_seconds = Histogram(
            "watchdog_polaris_request_duration_seconds",
            "Latency of Polaris requests.",
            ["project", "endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.jobs_watched = Gauge(
            "watchdog_jobs_watched",
            "Jobs seen in the last tick, by project.",
            ["project"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            "watchdog_alerts_firing",
            "Alerts firing now, by project and rule.",
            ["project", "rule"],
            registry=r,
        )
        self.notifications = Counter(
            "watchdog_notifications",
            "Notifications handed to notifiers, by reason.",
            ["reason"],
            registry=r,
        )
        self.slack_calls = Counter(
            "watchdog_slack_calls",
            "Slack Web API calls accepted, by method.",
            ["method"],
            registry=r,
        )
        self.slack_errors = Counter(
            "watchdog_slack_errors",
            "Slack Web API calls that failed, by method and error.",
            ["method", "error"],
            registry=r,
        )
        self.outbox_size = Gauge(
            "watchdog_outbox_size",
            "Notifications waiting for Slack.",
            registry=r,
        )
        self.leader = Gauge(
            "watchdog_leader",
            "1 while this replica holds the project's lease (polls and posts for it).",
            ["project"],
            registry=r,
        )
        self.metrics_staleness = Gauge(
            "watchdog_metrics_staleness_seconds",
            "Age of the oldest sample a metric rule relies on (the sweep's lag), by project.",
            ["project"],
            registry=r,
        )
        self.sweep_period = Gauge(
            "watchdog_sweep_period_seconds",
            "How long the last full metrics sweep over the watched jobs took, by project.",
            ["project"],
            registry=r,
        )
        self.metric_targets = Gauge(
            "watchdog_metric_targets",
            "Jobs whose metrics the sweep fetches, by project.",
            ["project"],
            registry=r,
        )
        self.healthy = Gauge(
            "watchdog_healthy",
            "1 while this replica watches everything it should; 0 while it reports a problem.",
            registry=r,
        )
        self.commands = Counter(
            "watchdog_commands",
            "Slash commands and button clicks, by command and outcome.",
            ["command", "outcome"],
            registry=r,
        )
        self.command_ack_seconds = Histogram(
            "watchdog_command_ack_seconds",
            "Time from request to ack for Slack requests.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3),
            registry=r,
        )

    def polaris_observer(self, project: str) -> Callable[[str, str, float], None]:
        """A :class:`watchdog.polaris.client.RequestObserver` for ``project``'s client."""

        def observe(endpoint: str, outcome: str, seconds: float) -> None:
            self.polaris_requests.labels(project, endpoint, outcome).inc()
            self.polaris_seconds.labels(project, endpoint).observe(seconds)

        return observe

    def set_firing(self, project: str, counts: dict[str, int]) -> None:
        """Replace a project's per-rule firing gauge (rules that no longer fire drop to 0)."""
        known = self._firing.setdefault(project, set())
        for rule in known - counts.keys():
            self.alerts_firing.labels(project, rule).set(0)
        for rule, count in counts.items():
            self.alerts_firing.labels(project, rule).set(count)
        known |= counts.keys()

    def render(self) -> bytes:
        return generate_latest(self.registry)
