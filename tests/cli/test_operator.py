"""The command line as a newcomer meets it, through the real entry point: --version,
completion, -c defaults, flags that read as flags, read-only commands without the API
keys, and validate --lint for CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from checker import __version__
from checker.store import migrate
from tests.tools import ROOT, run_cli

CONFIG = """
targets:
  - {name: ds, kind: openai, base_url: "https://${CHECKER_TEST_HOST}/v1",
     api_key: "${CHECKER_TEST_KEY}", model: deepseek-chat}
notify:
  - {url: "${CHECKER_TEST_SLACK}", tags: [page]}
storage: {url: "sqlite:///DB"}
"""


def without_secrets() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKER_")}
    return env


def write(tmp_path: Path) -> Path:
    db = tmp_path / "c.db"
    migrate.upgrade(f"sqlite:///{db}")
    path = tmp_path / "checker.yaml"
    path.write_text(CONFIG.replace("DB", str(db)))
    return path


def test_version_and_completion() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"checker {__version__}"
    # typer's completion for bash, zsh and fish is offered on the command itself.
    help_text = run_cli("--help").stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text


def test_flags_read_as_flags_in_help() -> None:
    out = run_cli("status", "--help")
    assert out.returncode == 0
    assert "--json " in out.stdout and "<bool>" not in out.stdout
    assert "CHECKER_CONFIG" in out.stdout and "checker.yaml" in out.stdout


def test_read_only_commands_need_the_storage_not_the_keys(tmp_path: Path) -> None:
    path = write(tmp_path)
    env = without_secrets()
    for args in (("status", "--json"), ("incidents", "--json"), ("nodes", "--json"),
                 ("compare", "--json"), ("export",)):  # fmt: skip
        out = run_cli(*args, "-c", str(path), env=env)
        assert out.returncode == 0, (args, out.stderr)
    preview = run_cli("digest", "-c", str(path), "--preview", str(tmp_path / "d.html"), env=env)
    assert preview.returncode == 0, preview.stderr
    # What talks to the route or the channels still needs them, and says which.
    check = run_cli("check", "-c", str(path), env=env)
    assert check.returncode == 2 and "CHECKER_TEST_KEY is not set" in check.stderr


def test_config_defaults_to_the_env_then_the_working_directory(tmp_path: Path) -> None:
    path = write(tmp_path)
    env = without_secrets()
    via_env = run_cli("status", "--json", env={**env, "CHECKER_CONFIG": str(path)})
    assert via_env.returncode == 0, via_env.stderr
    here = subprocess.run(
        [sys.executable, "-m", "checker.cli", "status", "--json"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert here.returncode == 0, here.stderr
    elsewhere = subprocess.run(
        [sys.executable, "-m", "checker.cli", "status"],
        cwd=tmp_path.parent, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert elsewhere.returncode == 2 and "checker.yaml: file not found" in elsewhere.stderr


def test_validate_lint_checks_all_but_the_secrets(tmp_path: Path) -> None:
    path = write(tmp_path)
    env = without_secrets()
    strict = run_cli("validate", "-c", str(path), env=env)
    assert strict.returncode == 2 and strict.stderr.count("is not set") == 3
    lint = run_cli("validate", "--lint", "-c", str(path), env=env)
    assert lint.returncode == 0, lint.stderr
    path.write_text(path.read_text().replace("model:", "modell:"))
    broken = run_cli("validate", "--lint", "-c", str(path), env=env)
    assert broken.returncode == 2 and "modell: unknown key" in broken.stderr


def test_help_imports_nothing_heavy() -> None:
    # `checker --help` and shell completion run often and must feel instant: the config
    # models, SQLAlchemy, httpx and asyncio load inside the commands that need them.
    code = (
        "import sys\n"
        "from checker.cli import app\n"
        "try:\n    app(['--help'], prog_name='checker')\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('pydantic', 'sqlalchemy', 'sqlmodel', 'httpx', 'asyncio', 'apprise', 'yaml')\n"
        "print('LOADED', *sorted(m for m in heavy if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "Usage: checker" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "LOADED"
