"""A simulated Polaris Jobs v1 API (``polaris-watchdog simulate``)."""
