"""Storage: days x targets x 1 probe/min of generated results in SQLite and PostgreSQL.

Per backend: insert throughput through the writer's own bulk path (store.writer.
insert_results, 10,000-row executemany batches; SQLite with PRAGMA synchronous=OFF during
the load only), rollups built with rollup.rollup_hours, then the figures users wait on:
`checker status` over 30 days for all targets (queries.status, main window 30d; and the
CLI end to end), digest.build for the last 24 h, and the database size.

The full size (30 days x 200 targets = 8.64M results) takes longer than `make bench`
allows; `make bench` runs a smaller, documented scale, and each section of
PERFORMANCE.md names the command and scale it came from.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from bench.common import PYTHON, ROOT, fmt, provenance, table, write_section

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DB = "checker_bench"
BATCH = 10_000
ERRORS = ("timeout", "server_error", "rate_limited", "disconnect", "stall")
TARGET_STATUS_MS = 300.0
TARGET_DIGEST_S = 2.0
PAST_THE_HOUR_MIN = 37


def target_names(count: int) -> list[str]:
    return [f"target-{i:03d}" for i in range(count)]


def generate(targets: list[str], since: datetime, minutes: int, seed: int = 7) -> Iterator[dict]:
    """One stream probe per target per minute; ~0.5% failures, plausible figures."""
    rng = random.Random(seed)
    base: dict[str, Any] = {
        "probe": "stream",
        "status": 200,
        "connect_ms": 2.0,
        "prompt_tokens": 12,
        "completion_tokens": 16,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.000012,
        "model": "sim-large",
        "retry_after_s": None,
        "detail": None,
        "chunks": 18,
        "output_chars": 40,
        "counted_tokens": 16,
        "location": "local",
        "maintenance": False,
    }
    for minute in range(minutes):
        at = since + timedelta(minutes=minute)
        for name in targets:
            ttft = rng.lognormvariate(6.0, 0.4)
            failed = rng.random() < 0.005
            row = dict(base)
            row["result_uid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            row["target"] = name
            row["started_at"] = at + timedelta(seconds=rng.random() * 59)
            row["ok"] = not failed
            row["error"] = rng.choice(ERRORS) if failed else None
            row["ttfb_ms"] = ttft * 0.3
            row["ttft_ms"] = None if failed else ttft
            row["latency_ms"] = ttft + 15 * 25.0 * rng.uniform(0.8, 1.2)
            row["tokens_per_s"] = None if failed else rng.uniform(30, 60)
            row["max_gap_ms"] = rng.uniform(20, 80)
            if failed:
                row["detail"] = f"simulated {row['error']}"
            yield row


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(engine: sa.Engine, rows: Iterator[dict], loader: str) -> tuple[int, float]:
    """Insert everything; (rows, seconds spent inserting, generation excluded).

    loader "writer": the service's own bulk path (insert_results). loader "bulk": what an
    import tool would do, for the full-size run: the DB-API executemany of plain tuples on
    SQLite, COPY on PostgreSQL.
    """
    count = 0
    spent = 0.0
    with engine.connect() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # Bulk load only: the service itself runs with synchronous=NORMAL.
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.commit()
        insert = _writer_insert if loader == "writer" else _bulk_insert
        for batch in _batches(rows, BATCH):
            t0 = time.perf_counter()
            insert(conn, batch)
            spent += time.perf_counter() - t0
            count += len(batch)
        if sqlite:
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.commit()
    return count, spent


def _writer_insert(conn: sa.Connection, batch: list[dict]) -> None:
    from checker.store.writer import insert_results

    with conn.begin():
        insert_results(conn, batch)


def _columns() -> list[str]:
    from checker.store.models import ProbeResultRow

    return [c.name for c in ProbeResultRow.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]


def _bulk_insert(conn: sa.Connection, batch: list[dict]) -> None:
    columns = _columns()
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.name == "sqlite":
        # Stored as SQLAlchemy stores UtcDateTime on SQLite: naive UTC text.
        def value(row: dict, c: str) -> Any:
            v = row[c]
            return v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v

        sql = (
            f"INSERT INTO probe_results ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        raw.executemany(sql, [tuple(value(r, c) for c in columns) for r in batch])
        raw.commit()
        return
    copy_sql = f"COPY probe_results ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cur, cur.copy(copy_sql) as copy:
        for r in batch:
            copy.write_row([r[c] for c in columns])
    raw.commit()


def db_size_mb(engine: sa.Engine, sqlite_file: Path | None) -> float:
    if sqlite_file is not None:
        files = [sqlite_file, Path(f"{sqlite_file}-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6
    with engine.connect() as conn:
        size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    return size / 1e6


def write_config(path: Path, url: str, targets: list[str]) -> None:
    cfg = {
        "targets": [
            {
                "name": name,
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "sim-large",
                "probes": ["stream"],
            }
            for name in targets
        ],
        "storage": {"url": url},
        "digest": {"timezone": "UTC"},
    }
    path.write_text(yaml.safe_dump(cfg))


def best_of(runs: int, fn: Any) -> float:
    """Fastest of `runs` timings (seconds): the machine is shared, the minimum is the cost."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _generated_now(engine: sa.Engine) -> datetime | None:
    """The `now` a kept database was generated for (the hour after its newest row)."""
    from checker.store.plan import floor_hour

    with engine.connect() as conn:
        newest = conn.execute(sa.text("SELECT max(started_at) FROM probe_results")).scalar()
    if newest is None:
        return None
    if isinstance(newest, str):
        newest = datetime.fromisoformat(newest)
    return floor_hour(newest.replace(tzinfo=UTC)) + timedelta(hours=1)


def measure(
    url: str,
    sqlite_file: Path | None,
    days: int,
    targets: int,
    loader: str,
    reuse: bool = False,
) -> dict[str, Any]:
    from checker.config import load as config_mod
    from checker.cost.prices import PriceBook
    from checker.digest.build import build as build_digest
    from checker.store import db, migrate, window_cache
    from checker.store.models import sync_targets
    from checker.store.plan import floor_hour
    from checker.store.queries.status import status
    from checker.store.rollup import rollup_hours

    names = target_names(targets)
    migrate.upgrade(url)
    engine = db.make_engine(url)
    kept_now = _generated_now(engine) if reuse else None
    now = kept_now or floor_hour(datetime.now(UTC))
    since = now - timedelta(days=days)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "bench.yaml"
        write_config(config_path, url, names)
        cfg = config_mod.load(config_path)
        sync_targets(engine, cfg)
        if kept_now is None:
            rows, load_s = load(engine, generate(names, since, days * 24 * 60), loader)
            t0 = time.perf_counter()
            rollup_hours(engine, since, now, now=now)
            window_cache.refresh(engine, now)  # the rollup job's second step
            rollup_s = time.perf_counter() - t0
        else:
            # A kept database (--keep): the load and rollup figures are from when it was
            # made, not this run, so they are not reported.
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT count(*) FROM probe_results")).scalar_one()
            load_s = rollup_s = float("nan")
            # What the service's rollup job keeps current (new after a schema upgrade).
            window_cache.refresh(engine, now)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
        status_s = best_of(3, lambda: status(engine, names, now, main_window="30d"))
        # Past the hour, the first partial hour of every window is read from raw rows.
        past = now + timedelta(minutes=PAST_THE_HOUR_MIN)
        status_past_s = best_of(3, lambda: status(engine, names, past, main_window="30d"))
        prices = PriceBook(cfg)
        digest_s = best_of(
            3, lambda: build_digest(engine, cfg, now - timedelta(hours=24), now, prices=prices)
        )
        t0 = time.perf_counter()
        subprocess.run(
            [PYTHON, "-m", "checker.cli", "status", "-c", str(config_path), "--window", "30d"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        cli_s = time.perf_counter() - t0
        size = db_size_mb(engine, sqlite_file)
    engine.dispose()
    return {
        "rows": rows,
        "load_s": load_s,
        "rollup_s": rollup_s,
        "status_s": status_s,
        "status_past_s": status_past_s,
        "digest_s": digest_s,
        "cli_s": cli_s,
        "size_mb": size,
    }


def _with_database(url: str, name: str) -> str:
    return str(sa.make_url(url).set(database=name).render_as_string(hide_password=False))


def pg_available(url: str) -> bool:
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def run_postgres(
    admin_url: str, days: int, targets: int, loader: str, keep: bool, name: str
) -> dict[str, Any]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
        if not (keep and exists):
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = _with_database(admin_url, name)
        return measure(url, None, days, targets, loader, reuse=keep)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def report(
    results: dict[str, dict[str, Any]], days: int, targets: int, skipped: str, loader: str
) -> str:
    header = [
        "backend",
        "results",
        "insert (rows/s)",
        "rollups built (s)",
        "status 30d, all targets (ms)",
        f"same at :{PAST_THE_HOUR_MIN} (ms)",
        "`checker status` CLI (s)",
        "digest 24 h (s)",
        "database size (MB)",
    ]
    rows = []
    verdicts = []
    for backend, r in results.items():
        rows.append(
            [
                backend,
                f"{r['rows']:,}",
                fmt(r["rows"] / r["load_s"], 0),
                fmt(r["rollup_s"], 1),
                fmt(r["status_s"] * 1000, 0),
                fmt(r["status_past_s"] * 1000, 0),
                fmt(r["cli_s"], 2),
                fmt(r["digest_s"], 2),
                fmt(r["size_mb"], 0),
            ]
        )
        slowest = max(r["status_s"], r["status_past_s"]) * 1000
        ok = slowest < TARGET_STATUS_MS and r["digest_s"] < TARGET_DIGEST_S
        verdicts.append(
            f"{backend}: target (status < {TARGET_STATUS_MS:g} ms, digest < {TARGET_DIGEST_S:g} s)"
            f" **{'met' if ok else 'MISSED'}**."
        )
    scale = f"{days} days x {targets} targets x 1 probe/min"
    return (
        f"## Storage: {scale}\n\n"
        f"{provenance()}\n\n"
        + (
            "Inserts go through the writer's bulk path (`insert_results`, 10,000-row batches; "
            "SQLite with `synchronous=OFF` during the load only). "
            if loader == "writer"
            else "Inserts by `--loader bulk`: DB-API executemany of tuples on SQLite "
            "(`synchronous=OFF` during the load), COPY on PostgreSQL, 10,000-row batches. "
        )
        + "Time spent generating rows is excluded. Status = `queries.status` for "
        "all targets with main window 30d after `rollup_hours` (best of 3), at the hour the "
        f"data ends and {PAST_THE_HOUR_MIN} minutes later (the first partial hour of each "
        "window then comes from raw rows; the target applies to the slower); the CLI column is "
        "`checker status --window 30d` end to end, Python start included; digest = "
        "`digest.build` of the last 24 h (best of 3).\n\n"
        + table(header, rows)
        + "\n\n"
        + "\n".join(verdicts)
        + (f"\n\n{skipped}" if skipped else "")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument(
        "--loader",
        choices=["writer", "bulk"],
        default="writer",
        help="writer: the service's insert_results; bulk: executemany / COPY (full-size run)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--section", default=None, help="PERFORMANCE.md section key (default: by scale)"
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        default=None,
        help="keep the generated databases (DIR/bench.db, PostgreSQL database "
        "checker_bench_kept) and reuse them on the next run with --keep: for profiling "
        "the queries without regenerating; load figures are then not reported",
    )
    parser.add_argument(
        "--pg-name",
        default=None,
        help=f"the PostgreSQL database to create (and drop, unless --keep); default "
        f"{BENCH_DB}, or {BENCH_DB}_kept with --keep. Two runs at once need different names",
    )
    args = parser.parse_args(argv)
    if args.pg_name is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.pg_name):
        parser.error("--pg-name: lower-case letters, digits and _ (it is put into SQL as is)")
    results: dict[str, dict[str, Any]] = {}
    skipped = ""
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.keep or tmp) / "bench.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            results["SQLite"] = measure(
                f"sqlite:///{path}", path, args.days, args.targets, args.loader, bool(args.keep)
            )
        print("storage: SQLite done", flush=True)
    if "postgresql" in backends:
        pg_url = os.environ.get("CHECKER_TEST_PG_URL") or DEFAULT_PG_URL
        if pg_available(pg_url):
            name = args.pg_name or (f"{BENCH_DB}_kept" if args.keep else BENCH_DB)
            results["PostgreSQL"] = run_postgres(
                pg_url, args.days, args.targets, args.loader, bool(args.keep), name
            )
            print("storage: PostgreSQL done", flush=True)
        else:
            skipped = f"PostgreSQL skipped: nothing answers at {sa.make_url(pg_url)!r}."
    text = report(results, args.days, args.targets, skipped, args.loader)
    key = args.section or f"storage-{args.days}d-{args.targets}t"
    write_section(key, text)
    print(text)


if __name__ == "__main__":
    main()
