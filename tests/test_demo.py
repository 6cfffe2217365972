"""`make demo`'s first minute as a newcomer sees it: the page is served while it runs, and
every command it prints afterwards works as printed, without the demo's API key."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from tests.tools import ROOT
from tests.waiting import becomes_true


def test_demo_serves_the_page_and_its_next_commands_work_as_printed(tmp_path: Path) -> None:
    env = {**os.environ, "CHECKER_DEMO_SECONDS": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("CHECKER_DEMO_KEY", None)
    env["PYTHONPATH"] = str(ROOT)
    demo = subprocess.Popen(
        [sys.executable, "-m", "checker.demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stdout is not None
    url = None
    for line in demo.stdout:
        if m := re.match(r"status page: (http://127\.0\.0\.1:\d+/)", line):
            url = m.group(1)
            break
    assert url is not None, "the demo prints where its status page is"
    # The page answers while the demo runs (the service may still be binding its port).
    pages: list[httpx.Response] = []

    def answered() -> bool:
        try:
            pages.append(httpx.get(url, timeout=20))
        except httpx.ConnectError:
            return False
        return True

    assert becomes_true(answered, within=30)
    assert pages[0].status_code == 200 and "steady" in pages[0].text
    rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0
    commands = [
        shlex.split(line.split("#")[0])[1:]
        for line in rest.splitlines()
        if line.startswith("  .venv/bin/checker ")
    ]
    assert len(commands) >= 4 and any(c[0] == "status" for c in commands)
    env.pop("CHECKER_DEMO_SECONDS")
    runs = [
        (c, subprocess.Popen([sys.executable, "-m", "checker.cli", *c], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for c in commands
    ]  # fmt: skip
    for command, proc in runs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (command, err)
        assert out.strip(), command
    assert (tmp_path / "var/demo/digest.html").is_file()
