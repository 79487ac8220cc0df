"""Prometheus metrics of one bot, on a registry of its own.

One :class:`BotMetrics` is created at start-up and passed to whoever counts something;
a private ``CollectorRegistry`` (not the library's global one) keeps tests and several
bots in one process apart. ``GET /metrics`` renders :meth:`BotMetrics.render`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class BotMetrics:
    def __init__(self) -> None:
        self._firing_rules: set[str] = set()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ticks = Counter(
            "watchdog_ticks",
            "Poll ticks completed, by outcome (ok, partial, failed).",
            ["outcome"],
            registry=r,
        )
        self.tick_seconds = Histogram(
            "watchdog_tick_duration_seconds",
            "Wall time of one poll tick.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.last_tick = Gauge(
            "watchdog_last_tick_timestamp_seconds",
            "Unix time of the last completed tick.",
            registry=r,
        )
        self.polaris_requests = Counter(
            "watchdog_polaris_requests",
            "HTTP attempts to Polaris, by endpoint and outcome "
            "(HTTP status, timeout, connection, malformed).",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.polaris_seconds = Histogram(
            "watchdog_polaris_request_duration_seconds",
            "Latency of Polaris requests.",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.jobs_watched = Gauge(
            "watchdog_jobs_watched",
            "Jobs seen in the last tick.",
            registry=r,
        )
        self.alerts_firing = Gauge(
            "watchdog_alerts_firing",
            "Alerts firing now, by rule.",
            ["rule"],
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

    def observe_polaris(self, endpoint: str, outcome: str, seconds: float) -> None:
        """A :class:`watchdog.polaris.client.RequestObserver`."""
        self.polaris_requests.labels(endpoint, outcome).inc()
        self.polaris_seconds.labels(endpoint).observe(seconds)

    def set_firing(self, counts: dict[str, int]) -> None:
        """Replace the per-rule firing gauge (rules that no longer fire drop to 0)."""
        for rule in self._firing_rules - counts.keys():
            self.alerts_firing.labels(rule).set(0)
        for rule, count in counts.items():
            self.alerts_firing.labels(rule).set(count)
        self._firing_rules |= counts.keys()

    def render(self) -> bytes:
        return generate_latest(self.registry)
