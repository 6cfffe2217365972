"""Storage: tables, engines, migrations, the batched result writer, rollups and queries.

Import the submodules directly (`checker.store.queries`, `checker.store.writer`, ...): this
package imports nothing, so `checker status` does not pay for Alembic (~0.8 s) on start.
"""
