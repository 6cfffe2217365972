"""Transport: the HTTP clients probes send through, and sockets that stamp when a request
left and when its bytes arrived, so timings measure the route and not the checker.

`pool` (ClientPool: one client per target) is what other stages use; `arrival` (the
stamping streams) and `connect` (the backend that opens them) serve the pool.
"""

__all__ = ["pool"]
