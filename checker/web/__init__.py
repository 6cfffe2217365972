"""The web stage: the HTTP server (/metrics, /healthz, the status page, the JSON API, uptime
badges) and the Prometheus metrics the service updates.

status_view is the pure view model of the status page; status_data and badges read the
store for it. Import the submodules directly; this package imports nothing (so the CLI
does not pay for aiohttp unless it serves).
"""

__all__ = ["badges", "metrics", "server", "status_data", "status_view"]
