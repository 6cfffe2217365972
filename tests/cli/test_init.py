"""`checker init`: every preset writes a commented starter that validates as written."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from checker.cli.init import PRESETS
from checker.cli.validate import channel_problems, config_warnings
from checker.config import load as config
from tests.tools import run_cli

# Stand-ins for the ${VAR}s the starters name, shaped as Apprise expects them.
FAKE = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXX"}


def _env_for(text: str) -> dict[str, str]:
    names = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text))
    return {name: FAKE.get(name, f"sk-test-{name.lower()}") for name in names}


def test_each_preset_writes_a_private_commented_file_that_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for preset in PRESETS:
        out = tmp_path / f"{preset}.yaml"
        res = run_cli("init", "-o", str(out), "--preset", preset)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[0].startswith(f"wrote {out} (preset {preset})")
        assert f"checker validate -c {out}" in res.stdout
        assert stat.S_IMODE(out.stat().st_mode) == 0o600  # a key pasted inline stays private
        text = out.read_text()
        assert text.count("\n#") + text.count("  # ") >= 8, "a starter explains itself"
        for name, value in _env_for(text).items():
            monkeypatch.setenv(name, value)
        cfg = config.load(out)  # every secret resolves, every field validates
        assert channel_problems(out, cfg) == []
        assert config_warnings(out, cfg) == [], preset
    # And once through the real `validate`, as the file's own comments tell a newcomer.
    env = {**os.environ, **_env_for((tmp_path / "deepseek-relays.yaml").read_text())}
    res = run_cli("validate", "-c", str(tmp_path / "deepseek-relays.yaml"), env=env)
    assert res.returncode == 0, res.stderr
    assert "valid: 3 targets" in res.stdout


def test_init_never_overwrites_unless_forced_and_rejects_unknown_presets(tmp_path: Path) -> None:
    out = tmp_path / "checker.yaml"
    out.write_text("# mine\n")
    res = run_cli("init", "-o", str(out))
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: {out}: already exists; pass --force to overwrite it, or -o another file"
    )
    assert out.read_text() == "# mine\n"
    assert run_cli("init", "-o", str(out), "--force").returncode == 0
    assert "kind: openai" in out.read_text()
    bad = run_cli("init", "--preset", "gemini", "-o", str(tmp_path / "g.yaml"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (
        "error: --preset gemini: unknown preset; expected one of "
        "openai, deepseek-relays, anthropic, vllm"
    )
    printed = run_cli("init", "-o", "-", "--preset", "vllm")
    assert printed.returncode == 0 and "kind: openai" in printed.stdout
