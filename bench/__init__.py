"""Performance benchmarks of polaris-watchdog (``make bench`` / ``python -m bench``).

The bot works on two cadences: a listing tick every interval (listings, health and
execution rules, commit) and a metrics sweep per project that fetches watched jobs'
metrics continuously, stalest first, within ``max_rate`` and ``concurrency``. One module
per subject: health-alert latency beside the sweep's period and efficiency
(:mod:`bench.alert_latency`), the sweep alone against a bare client and the limits held
(:mod:`bench.sweep`), 10 projects on one bot (:mod:`bench.projects`), memory
(:mod:`bench.memory`), what each command imports (:mod:`bench.imports`), evaluation cost
(:mod:`bench.evaluation`), command ack (:mod:`bench.command_ack`), storm
(:mod:`bench.storm`) and efficiency of API use (:mod:`bench.api_use`). Each prints its
figures with their targets and PASS/FAIL; :mod:`bench.__main__` runs them and ends with a
Markdown summary table. :mod:`bench.chaos` is the chaos scenario of the tests, longer.
"""
