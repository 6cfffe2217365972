"""The daily digest: store reads -> a pure context -> HTML, text and chat -> Apprise, once a day.

Data flow: `build` reads the period's figures from the store and calls the pure core
(`context.make_context`, drawing on `period`, `changes`, `honesty`, `shift` and `charts`,
the charts' geometry; data in `inputs` and `models`); `render` turns the context into
documents; `send` delivers them, skips a period with nothing to report and keeps the
once-a-day ledger. Other stages use the modules named in `__all__`: `period` (which
period), `build` (the context), `render` (the documents), `send` (`run_scheduled`,
`send_now`). Nothing is imported here, so `import checker.digest.period` stays cheap (no
css-inline, no Apprise).
"""

__all__ = ["build", "period", "render", "send"]
