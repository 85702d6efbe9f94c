"""``make bench``: the service's throughput and latency, as ratios to limits of the same run.

Nothing here is part of ``make test``. ``python -m bench`` starts its own store
(the embedded Valkey binary), the service and a bare reference ASGI app on
loopback, pins the servers and the load generator to different cores where the
machine has them, drives a bounded load with ``wrk`` (or a Python load
generator when wrk cannot be had, and says so), stops every process it started,
and writes the table with the machine's details to ``bench/RESULTS.md``.
"""
