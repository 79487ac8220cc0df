"""polaris-watchdog: watch Imply Polaris ingestion jobs, alert in Slack, act from Slack."""

__version__ = "0.1.0"
