"""Performance benchmarks of polaris-watchdog (``make bench`` / ``python -m bench``).

One module per figure of the performance issue: tick efficiency (:mod:`bench.tick`),
evaluation cost (:mod:`bench.evaluation`), memory (:mod:`bench.memory`), alert latency
(:mod:`bench.alert_latency`), command ack (:mod:`bench.command_ack`), storm
(:mod:`bench.storm`) and efficiency of API use (:mod:`bench.api_use`). Each prints its
figures with their targets and PASS/FAIL; :mod:`bench.__main__` runs them and ends with
a Markdown summary table.
"""
