"""Storage: tables, engines, migrations, the batched result writer, rollups, window
planning and every SQL read (checker.store.queries).

Data flow: writer (raw results) -> rollup (hourly and daily rows) -> queries.window_cache
(pre-merged runs) -> queries (plan.plan_window splits each window between them).

Import the submodules directly (`checker.store.queries.status`, `checker.store.writer`,
...): this package imports nothing, so `checker status` does not pay for Alembic (~0.8 s)
on start.
"""

__all__ = [
    "db",
    "digest_log",
    "leader",
    "migrate",
    "models",
    "plan",
    "prune",
    "queries",
    "rollup",
    "tables",
    "upsert",
    "writer",
]
