"""``polaris-watchdog test-rules``: unit tests for rules files, on the production judging code."""
