"""The systemd unit: it verifies, rates 2.0 or lower, and the service keeps its side of it.

The unit promises systemd a notify-type service (READY, WATCHDOG, STOPPING), config reload
on SIGHUP, state in $STATE_DIRECTORY, keys from $CREDENTIALS_DIRECTORY, and that it runs with
MemoryDenyWriteExecute=yes. The last tests run the real service that way, with the kernel's
own W^X switch (prctl PR_SET_MDWE, Linux 6.3+) standing in for systemd's seccomp filter.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from checker.sim.server import SimServer
from tests.tools import required_tool
from tests.waiting import becomes_true

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "checker.service"
VENV_CHECKER = Path(sys.executable).with_name("checker")
MAX_EXPOSURE = 2.0
SIM_KEY = "sk-sim-UNIT-SECRET-5f0c2a9e7d"

# Runs first in the child: turn on W^X for the rest of the process's life, then report.
# PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1; EINVAL means the kernel is older than 6.3.
MDWE_PRELUDE = """
import ctypes, os, sys
_libc = ctypes.CDLL(None, use_errno=True)
if _libc.prctl(65, 1, 0, 0, 0) == 0:
    print("mdwe=on", file=sys.stderr, flush=True)
else:
    print("mdwe=unsupported errno=%d" % ctypes.get_errno(), file=sys.stderr, flush=True)
"""

RUN_CHECKER = """
sys.argv = ["checker", *sys.argv[1:]]
from checker.cli import main
main()
"""

# Imports every compiled extension of the venv and the standard library, psycopg first (its
# binary package refuses to load on its own), and prints the ones that fail, one per line.
IMPORT_EVERY_EXTENSION = """
import importlib, pathlib, sysconfig
import psycopg
print("psycopg-impl", psycopg.pq.__impl__, flush=True)
# site-packages, and the base interpreter's lib-dynload (not the venv's: it has none).
roots = [pathlib.Path(sysconfig.get_paths()["purelib"]),
         pathlib.Path(sysconfig.get_config_var("DESTSHARED"))]
names = set()
for root in roots:
    for so in root.rglob("*.so"):
        rel = so.relative_to(root)
        if any(part.endswith((".libs", ".dist-info")) for part in rel.parts):
            continue
        names.add(".".join((*rel.parts[:-1], so.name.split(".")[0])))
print("extensions", len(names), flush=True)
for name in sorted(names):
    try:
        importlib.import_module(name)
    except Exception as exc:
        print("failed", name, type(exc).__name__, flush=True)
"""


@pytest.fixture
def systemd_analyze() -> str:
    return required_tool("systemd-analyze", "apt-get install -y systemd")


def unit_settings(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value it is given (systemd allows repeating a key)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


# --- the unit file --------------------------------------------------------------------------


def test_unit_states_the_service_contract() -> None:
    s = unit_settings(UNIT.read_text())
    assert s["Service.Type"] == ["notify"]
    assert s["Service.NotifyAccess"] == ["main"]
    assert s["Service.WatchdogSec"] == ["60s"]
    assert s["Service.ExecStart"][0].startswith(
        "/opt/checker/bin/checker run -c /etc/checker/config.yaml"
    )
    assert s["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Service.DynamicUser"] == ["yes"]
    assert s["Service.StateDirectory"] == ["checker"]
    assert s["Service.ConfigurationDirectory"] == ["checker"]
    assert s["Service.MemoryDenyWriteExecute"] == ["yes"]
    assert s["Service.CapabilityBoundingSet"] == [""]
    assert s["Service.RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    # It must reach providers anywhere: no IP allow list.
    assert "Service.IPAddressDeny" not in s


def test_unit_passes_systemd_analyze_verify(systemd_analyze: str, tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point a copy at this venv's real `checker`.
    assert VENV_CHECKER.exists(), f"{VENV_CHECKER} missing: is the project installed?"
    text = UNIT.read_text()
    copy = tmp_path / "checker.service"
    copy.write_text(text.replace("/opt/checker/bin/checker", str(VENV_CHECKER)))
    assert str(VENV_CHECKER) in copy.read_text()
    done = subprocess.run(
        [systemd_analyze, "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [
        line for line in (done.stdout + done.stderr).splitlines() if "checker.service" in line
    ]
    assert done.returncode == 0, done.stdout + done.stderr
    assert complaints == []


def test_unit_rates_2_or_lower_in_systemd_analyze_security(systemd_analyze: str) -> None:
    done = subprocess.run(
        [
            systemd_analyze,
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            "--no-pager",
            str(UNIT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for checker\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr  # --threshold agrees


# --- MemoryDenyWriteExecute=yes -------------------------------------------------------------


def start_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(child: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=60)
    return child.returncode, out, err


def test_every_compiled_extension_loads_without_writable_executable_memory() -> None:
    # A wheel with text relocations or a JIT fails under W^X at import or first use; compare
    # with a normal interpreter so a module that is broken anyway does not count.
    guarded, plain = (
        start_python(MDWE_PRELUDE + IMPORT_EVERY_EXTENSION),
        start_python(IMPORT_EVERY_EXTENSION),
    )
    code, out, err = finish(guarded)
    _, plain_out, _ = finish(plain)
    if "mdwe=unsupported" in err:
        pytest.skip(f"kernel has no PR_SET_MDWE (needs Linux 6.3): {err.strip()}")
    assert code == 0, err
    assert "mdwe=on" in err
    assert "psycopg-impl binary" in out
    count = re.search(r"extensions (\d+)", out)
    assert count and int(count.group(1)) > 50  # the walk found both sets of extensions
    failed_guarded = {ln for ln in out.splitlines() if ln.startswith("failed")}
    failed_plain = {ln for ln in plain_out.splitlines() if ln.startswith("failed")}
    assert failed_guarded == failed_plain


def test_writable_executable_memory_is_refused_in_the_child() -> None:
    # The check above means something only if W^X is really enforced there.
    probe = "import mmap\ntry:\n    mmap.mmap(-1, 4096, prot=7)\n    print('wx=allowed')\n"
    probe += "except OSError:\n    print('wx=refused')\n"
    _, out, err = finish(start_python(MDWE_PRELUDE + probe))
    if "mdwe=unsupported" in err:
        pytest.skip("kernel has no PR_SET_MDWE (needs Linux 6.3)")
    assert out.strip() == "wx=refused"


# --- the running service, as the unit starts it ---------------------------------------------


class NotifyListener:
    """The systemd side of sd_notify: an abstract datagram socket collecting messages."""

    def __init__(self) -> None:
        self.address = f"@checker-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.messages: list[str] = []

    def wait_for(
        self, wanted: Callable[[list[str]], bool], seconds: float, child: subprocess.Popen[bytes]
    ) -> bool:
        """True once `wanted` holds; False when time runs out or the child exits first."""
        deadline = time.monotonic() + seconds
        while not wanted(self.messages):
            left = deadline - time.monotonic()
            if left <= 0 or child.poll() is not None:
                return False
            self.sock.settimeout(min(left, 0.2))
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())
        return True

    def drain(self) -> None:
        """Collect what arrived after the last wait (e.g. STOPPING=1 of an exited child)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in self.messages)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def keyed_sim() -> Iterator[SimServer]:
    server = SimServer(api_key=SIM_KEY)
    server.start_in_thread()
    yield server
    server.stop_thread()


def target_yaml(name: str, base_url: str) -> str:
    return f"""
  - name: {name}
    kind: openai
    base_url: {base_url}
    api_key: credential:sim_key
    model: sim-small
    probes: [models, stream]
    interval: 1s
"""


def is_json_event(line: str) -> bool:
    try:
        return isinstance(json.loads(line).get("msg"), str)
    except (ValueError, AttributeError):
        return False


def test_service_keeps_the_units_promises(
    tmp_path: Path, notify: NotifyListener, keyed_sim: SimServer
) -> None:
    state, credentials = tmp_path / "state", tmp_path / "credentials"
    state.mkdir()
    credentials.mkdir()
    (credentials / "sim_key").write_text(SIM_KEY + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("targets:" + target_yaml("first", keyed_sim.url()))
    log = tmp_path / "service.log"
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify.address,
        "WATCHDOG_USEC": "400000",  # pings every 0.2 s
        "STATE_DIRECTORY": str(state),
        "CREDENTIALS_DIRECTORY": str(credentials),
    }
    env.pop("WATCHDOG_PID", None)
    args = ["run", "-c", str(config), "--log-format", "json"]
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", MDWE_PRELUDE + RUN_CHECKER, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        ready = notify.wait_for(lambda m: any("READY=1" in x for x in m), 60, child)
        assert ready, f"no READY=1; exit {child.poll()}; log:\n{log.read_text()}"
        pinged = notify.wait_for(lambda m: notify.count("WATCHDOG=1") >= 2, 5, child)
        assert pinged, notify.messages

        # The key came from $CREDENTIALS_DIRECTORY: the simulator accepted it.
        assert becomes_true(lambda: keyed_sim.stats()["completed"] >= 2, 15), keyed_sim.stats()
        assert 401 not in keyed_sim.stats()["status"]

        # SIGHUP (ExecReload) applies a new config without a restart.
        config.write_text(
            "targets:"
            + target_yaml("first", keyed_sim.url())
            + target_yaml("second", keyed_sim.url())
        )
        child.send_signal(signal.SIGHUP)
        assert becomes_true(lambda: "config reloaded" in log.read_text(), 15), log.read_text()
        assert child.poll() is None

        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0, log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    notify.drain()
    assert notify.count("STOPPING=1") == 1
    text = log.read_text()
    assert "mdwe=on" in text or "mdwe=unsupported" in text
    assert SIM_KEY not in text
    # --log-format json (as CHECKER_OPTS passes it): every line, stray warnings included,
    # must be one JSON event, or journal readers and log shippers choke on it.
    service_lines = [ln for ln in text.splitlines() if not ln.startswith("mdwe=")]
    assert service_lines
    assert [ln for ln in service_lines if not is_json_event(ln)] == []
    database = state / "checker.db"  # the default storage lives in $STATE_DIRECTORY
    with contextlib.closing(sqlite3.connect(database)) as db:
        (stored,) = db.execute("SELECT count(*) FROM probe_results").fetchone()
    assert stored >= 2  # the results written on the way out are there
    assert SIM_KEY.encode() not in database.read_bytes()
