"""Fixtures that give a migrated database: SQLite always, PostgreSQL when configured."""
