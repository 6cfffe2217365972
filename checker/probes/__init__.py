"""Probes: one module per protocol, all returning a ProbeResult."""
