"""The service stage: the one long-running process that schedules every probe and job.

`Service` (wiring.py) builds, starts, reloads (SIGHUP) and stops it. jobs.py is the job
table: every scheduled job, its trigger, and whether only the leader runs it.
accounting.py keeps spend caps and Retry-After holds; results.py prices and logs each
result; gauges.py sets the SLO gauges; housekeeping.py sends the digest and prunes;
sdnotify.py talks to systemd. `Clock` is the time the service's decisions use: the system
clock unless a test passes an `OffsetClock` to advance.
"""

from checker.service.clock import Clock, OffsetClock
from checker.service.wiring import Service

__all__ = ["Clock", "OffsetClock", "Service"]
