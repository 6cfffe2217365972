"""Alerting: measurements -> rule verdicts -> incidents -> notifications, delivered at least once.

The pure core (no clock, no I/O): `slo` (burn-rate and budget math), `rules` (one
evaluation, `evaluate(state, signals, policy, now)`) with `signals`, `state`, `down_rule`,
`threshold_rules`, `incidents` and `notification` (the typed `Notification`). The shell:
`evaluator` (reads the store, runs the rules, writes state, incidents and outbox rows in
one transaction), `messages` (a notification's text), `outbox` (the durable queue),
`deliver` (Apprise sending), `channels` (the configured URLs and routing by tag), `certs`
(TLS expiry watch) and `maintenance` (the calendar).

Other stages import the submodules below directly; this package imports nothing, so
importing `checker.alerting.slo` does not pull in the store or Apprise.
"""

__all__ = ["certs", "channels", "deliver", "evaluator", "maintenance", "outbox", "slo"]
