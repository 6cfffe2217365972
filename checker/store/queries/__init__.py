"""Every SQL read of the store, by the view it serves.

- `window`: the one read of a window plan (daily rollups, hourly rollups, raw rows), the
  building block of all the others;
- `status`: per-target status and SLO window counts (`checker status`, alerting, badges);
- `series`: hourly points for charts;
- `digest`: spend, incidents, token-honesty usages and error details for the digest;
- `page`: per-day uptime, current streaks and incidents for the status page;
- `window_cache`: whole runs of days and hours pre-merged for status windows (the rollup
  job refreshes it after each rollup; `status` reads it).

Import the submodules directly: this package imports nothing.
"""

__all__ = ["digest", "page", "series", "status", "window", "window_cache"]
