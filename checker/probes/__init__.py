"""Probes: send one request to a target and come back with a classified ProbeResult.

Other stages use `base` (ProbeResult, ErrorKind), `registry` (which probes exist, which
are free or default), `runner` (run_probe, run_all), `conditions` (the http probe's
conditions, which config validates) and `transport.pool` (ClientPool). The chat probes are
one skeleton (`chat`) with a dialect per API (`openai`, `anthropic`); `http` is its own.
"""

__all__ = ["base", "conditions", "registry", "runner", "transport"]
