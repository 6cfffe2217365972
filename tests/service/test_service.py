"""The service as a process: every result stored, crash safety, database outages.

Each test runs `checker run` as a real subprocess against the simulator over loopback, with
sub-second intervals, and compares what the simulator served with what the database holds.
The helpers here (config writing, the service process, database reads) are shared with
tests/service/test_control.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from checker.sim.server import SimServer
from checker.store.db import make_engine
from tests.fixtures_db import TcpProxy
from tests.waiting import becomes_true

# The simulator counts chat completions under "chat"; the checker calls that probe "stream".
ENDPOINT_OF_PROBE = {"models": "models", "stream": "chat"}
# Variables that would make the child talk to a systemd that is not there.
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


# --- helpers shared by the service tests ------------------------------------------------------


def target_yaml(
    name: str,
    base_url: str,
    *,
    probes: Sequence[str] = ("models", "stream"),
    interval: str = "200ms",
    extra: str = "",
) -> str:
    """One entry of `targets:`; `extra` is more YAML keys, one per line, unindented."""
    lines = [
        f"  - name: {name}",
        "    kind: openai",
        f"    base_url: {base_url}",
        "    model: sim-small",
        f"    probes: [{', '.join(probes)}]",
        f"    interval: {interval}",
        *(f"    {line}" for line in extra.strip().splitlines()),
    ]
    return "\n".join(lines) + "\n"


def config_yaml(storage_url: str, targets: Sequence[str]) -> str:
    return (
        "targets:\n"
        + "".join(targets)
        + f'storage: {{url: "{storage_url}", flush_every: 200ms}}\n'
        + "scheduler: {shutdown_grace: 2s}\n"
    )


class ServiceProcess:
    """`checker run -c FILE` as a child process, its output (stdout and stderr) in a file."""

    def __init__(
        self,
        config: Path,
        log_path: Path,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        child_env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARS}
        child_env.update(env or {})
        with log_path.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "checker.cli", "run", "-c", str(config), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=config.parent,
                env=child_env,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, seconds: float = 30) -> None:
        """Wait until `text` appears in the output; fail at once if the process exits."""
        found = becomes_true(lambda: text in self.log() or self.process.poll() is not None, seconds)
        assert found and text in self.log(), (
            f"{text!r} not logged (exit code {self.process.poll()}):\n{self.log()}"
        )

    def running(self) -> bool:
        return self.process.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def terminate(self, sig: signal.Signals = signal.SIGTERM, seconds: float = 30) -> int:
        """SIGTERM (or SIGINT, as Ctrl-C sends), then the exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=seconds)

    def kill(self) -> None:
        """SIGKILL: no handler, no final flush, no cleanup."""
        self.process.kill()
        self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@contextlib.contextmanager
def running_service(
    config: Path,
    log_path: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> Iterator[ServiceProcess]:
    """Start the service; with `ready`, wait for its start line. Killed if still running after."""
    service = ServiceProcess(config, log_path, args=args, env=env)
    try:
        if ready:
            service.wait_for_log("service started")
        yield service
    finally:
        service.close()


@dataclass(frozen=True)
class StoredRow:
    result_uid: str
    target: str
    probe: str
    started_at: datetime
    ok: bool
    error: str | None
    status: int | None
    retry_after_s: float | None
    cost_usd: float | None
    detail: str | None


def stored_rows(url: str) -> list[StoredRow]:
    """Every probe_results row, in insertion order, read with an engine of our own."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT result_uid, target, probe, started_at, ok, error, status, "
                    "retry_after_s, cost_usd, detail FROM probe_results ORDER BY id"
                )
            ).all()
    finally:
        engine.dispose()
    return [
        StoredRow(
            r.result_uid,
            r.target,
            r.probe,
            _utc(r.started_at),
            bool(r.ok),
            r.error,
            r.status,
            r.retry_after_s,
            r.cost_usd,
            r.detail,
        )
        for r in rows
    ]


def _utc(value: Any) -> datetime:
    # SQLite hands back ISO text through a raw text() query, PostgreSQL an aware datetime.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def count_per_job(rows: Sequence[StoredRow]) -> Counter[tuple[str, str]]:
    return Counter((r.target, r.probe) for r in rows)


def served_per_job(sim: SimServer, targets: dict[str, Sequence[str]]) -> Counter[tuple[str, str]]:
    """Requests the simulator received per (target, probe); each target has its own route."""
    served: Counter[tuple[str, str]] = Counter()
    for target, probes in targets.items():
        requests = sim.stats(target)["requests"]
        for probe in probes:
            served[(target, probe)] = requests.get(ENDPOINT_OF_PROBE[probe], 0)
    return served


def every_job_has(url: str, jobs: Sequence[tuple[str, str]], at_least: int) -> Callable[[], bool]:
    def check() -> bool:
        counts = count_per_job(stored_rows(url))
        return all(counts[job] >= at_least for job in jobs)

    return check


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# --- the tests ---------------------------------------------------------------------------------

BOTH_PROBES = ("models", "stream")


def test_every_result_is_stored_and_matches_what_the_simulator_served(
    sim: SimServer, tmp_path: Path
) -> None:
    db_url = sqlite_url(tmp_path / "checker.db")
    # One healthy route and one that fails: failures are results too and must be stored.
    sim.set("broken", status=503)
    targets = {"healthy": BOTH_PROBES, "broken": BOTH_PROBES}
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(db_url, [target_yaml(n, sim.url(n)) for n in targets]))
    jobs = [(t, p) for t, probes in targets.items() for p in probes]

    with running_service(config, tmp_path / "service.log") as service:
        # Rows land while the service runs (flush_every 200ms), not only at shutdown.
        assert becomes_true(every_job_has(db_url, jobs, 3), 20), service.log()
        assert service.terminate() == 0, service.log()

    rows = stored_rows(db_url)
    served = served_per_job(sim, targets)
    assert all(served[job] >= 3 for job in jobs), served
    assert count_per_job(rows) == served
    assert len({r.result_uid for r in rows}) == len(rows)
    assert {r.ok for r in rows if r.target == "healthy"} == {True}
    assert {(r.ok, r.status) for r in rows if r.target == "broken"} == {(False, 503)}
    assert f"stopped: {len(rows)} results written, 0 dropped, 0 still queued" in service.log()


def test_kill_9_loses_nothing_flushed_duplicates_nothing_and_the_schedule_resumes(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    targets = {"first": BOTH_PROBES, "second": ("models",)}
    config = tmp_path / "config.yaml"
    config.write_text(
        config_yaml(url, [target_yaml(n, sim.url(n), probes=p) for n, p in targets.items()])
    )
    jobs = [(t, p) for t, probes in targets.items() for p in probes]

    with running_service(config, tmp_path / "before.log") as service:
        assert becomes_true(every_job_has(url, jobs, 3), 20), service.log()
        seen_while_running = stored_rows(url)
        service.kill()
    killed_at = datetime.now(UTC)
    served_at_kill = served_per_job(sim, targets)
    before = stored_rows(url)

    # What was committed stays committed (SQLite WAL survives the crash), and what was lost
    # is at most the last flush period's worth plus the probes in flight, per job.
    assert set(seen_while_running) <= set(before)
    stored_at_kill = count_per_job(before)
    for job in jobs:
        assert 0 <= served_at_kill[job] - stored_at_kill[job] <= 5, (job, served_at_kill)

    with running_service(config, tmp_path / "after.log") as service:
        # The schedule resumes: every job stores results that started after the crash.
        def resumed() -> bool:
            fresh = count_per_job(r for r in stored_rows(url) if r.started_at > killed_at)
            return all(fresh[job] >= 2 for job in jobs)

        assert becomes_true(resumed, 20), service.log()
        assert service.terminate(signal.SIGINT) == 0, service.log()  # Ctrl-C stops cleanly too

    after = stored_rows(url)
    assert set(before) <= set(after)  # nothing lost across the restart
    assert len({r.result_uid for r in after}) == len(after)  # nothing stored twice
    starts = Counter((r.target, r.probe, r.started_at) for r in after)
    assert max(starts.values()) == 1
    # Only the results in the writer's queue at the kill are missing: the simulator served
    # each of the others exactly once, and the second run stored all of its own.
    served_total = served_per_job(sim, targets)
    for job in jobs:
        lost = served_at_kill[job] - stored_at_kill[job]
        assert count_per_job(after)[job] == served_total[job] - lost


def test_a_database_outage_keeps_probing_and_every_queued_result_lands(
    sim: SimServer, pg_url: str, pg_proxy: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, via_proxy = pg_proxy
    targets = {"steady": BOTH_PROBES}
    jobs = [("steady", p) for p in BOTH_PROBES]
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(via_proxy, [target_yaml("steady", sim.url("steady"))]))

    with running_service(config, tmp_path / "service.log") as service:
        assert becomes_true(every_job_has(pg_url, jobs, 3), 20), service.log()

        proxy.stop()  # refuses new connections and cuts the open ones
        served_at_cut = served_per_job(sim, targets)
        service.wait_for_log("database unavailable", 10)
        time.sleep(2.0)
        served_during = served_per_job(sim, targets)
        # The probes never waited on the database: each job kept its ~5 per second.
        assert all(served_during[job] - served_at_cut[job] >= 4 for job in jobs), (
            served_at_cut,
            served_during,
        )
        assert service.running()

        proxy.start()
        service.wait_for_log("database reachable again", 20)
        assert service.terminate() == 0, service.log()

    rows = stored_rows(pg_url)
    assert count_per_job(rows) == served_per_job(sim, targets)
    assert len({r.result_uid for r in rows}) == len(rows)
    assert "0 dropped, 0 still queued" in service.log()
