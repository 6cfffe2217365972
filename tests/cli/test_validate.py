"""`checker validate` catches what loading cannot: channel URLs Apprise rejects (at their
line, exit 2), absurd numbers, and warns about public listeners, readable inline keys and
timeouts longer than the interval and concurrency limits below rate x timeout."""

from __future__ import annotations

import os
from pathlib import Path

from tests.tools import run_cli

TARGET = "targets:\n  - {name: t, kind: http, base_url: 'http://127.0.0.1:9'}\n"


def validate(tmp_path: Path, text: str, mode: int = 0o600) -> tuple[int, str, str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    os.chmod(path, mode)
    res = run_cli("validate", "-c", str(path))
    return res.returncode, res.stdout, res.stderr


def test_channel_urls_apprise_rejects_are_errors_at_their_line(tmp_path: Path) -> None:
    code, _, err = validate(
        tmp_path,
        TARGET
        + "notify:\n"
        + "  - {url: 'json://127.0.0.1/hook'}\n"
        + "  - {url: 'notascheme://x'}\n"
        + "  - {url: 'mailto://user@'}\n",
    )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith(f"error: {tmp_path / 'c.yaml'}:5: notify[1].url: Apprise")
    assert "'notascheme'" in lines[0]
    assert lines[1].startswith(f"error: {tmp_path / 'c.yaml'}:6: notify[2].url:")


def test_schema_problems_and_channel_urls_are_reported_in_one_pass(tmp_path: Path) -> None:
    code, _, err = validate(
        tmp_path,
        "targets:\n"
        "  - {name: t, kind: http, base_url: 'http://127.0.0.1:9', intervall: 5s}\n"
        "notify:\n"
        "  - {url: 'notascheme://x'}\n"
        "  - {url: '${CHECKER_TEST_UNSET_HOOK}'}\n",
    )
    assert code == 2 and "Traceback" not in err
    lines = sorted(err.strip().splitlines(), key=lambda line: int(line.split(":")[2]))
    assert len(lines) == 3, err
    assert ":2: targets[0].intervall: unknown key" in lines[0]
    assert ":4: notify[0].url: Apprise cannot use this URL" in lines[1]
    assert ":5: notify[1].url: environment variable CHECKER_TEST_UNSET_HOOK is not set" in lines[2]


def test_absurd_numbers_are_rejected(tmp_path: Path) -> None:
    code, _, err = validate(
        tmp_path,
        TARGET + "scheduler: {max_concurrency: 1e24}\ndefaults: {interval: 99999999999999d}\n",
    )
    assert code == 2 and "Traceback" not in err
    assert "max_concurrency" in err and "at most 400d" in err
    assert len(err.strip().splitlines()) == 2  # both problems, in one pass


def test_warnings_for_what_is_valid_but_risky(tmp_path: Path) -> None:
    text = (
        "targets:\n"
        "  - name: t\n"
        "    kind: openai\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    model: m\n"
        "    api_key: sk-inline-0123456789\n"
        "    interval: 10s\n"
        "    timeout: 30s\n"
        "server: {listen: '0.0.0.0:9464'}\n"
    )
    code, out, err = validate(tmp_path, text, mode=0o644)
    assert code == 0 and "valid" in out, err
    assert "timeout 30s is longer than its interval 10s" in err
    assert "0.0.0.0:9464 is reachable from other machines and has no basic_auth" in err
    assert "holds API keys inline and others can read it (mode 644)" in err
    assert "sk-inline" not in err + out
    # Private file, loopback listener, keys from the environment: no warning of these kinds.
    os.environ["CHECKER_TEST_KEY"] = "sk-env"
    quiet = text.replace("sk-inline-0123456789", "${CHECKER_TEST_KEY}").replace(
        "0.0.0.0", "127.0.0.1"
    )
    code, _, err = validate(tmp_path, quiet.replace("timeout: 30s", "timeout: 5s"), mode=0o644)
    assert code == 0 and "warning" not in err, err


def test_validate_prints_what_paid_probes_cost_per_day(tmp_path: Path) -> None:
    code, out, err = validate(
        tmp_path,
        "targets:\n"
        "  - {name: t, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: gpt-4o-mini,\n"
        "     probes: [models, prefill], interval: 60s, prefill_tokens: 10000,\n"
        "     pricing: {input_per_mtok: 0.5, output_per_mtok: 2.0}}\n",
    )
    assert code == 0, err
    # 1,440 runs a day of 10,000 prompt tokens at $0.50 and one output token at $2.00 per M.
    per_day = 1440 * (10000 * 0.5 + 1 * 2.0) / 1e6
    assert f"cost: t/prefill: about ${per_day:.4f}/day at 60s" in out
    assert "t/models" not in out  # free
    assert f"cost: all probes: about ${per_day:.4f}/day" in out


def test_a_concurrency_limit_below_rate_times_timeout_is_a_warning(tmp_path: Path) -> None:
    # 1,000 targets every 3 s = 20,000 probes/min, each run up to 1 s: 334 at once.
    targets = "".join(
        f"  - {{name: t{i}, kind: http, base_url: 'http://127.0.0.1:9'}}\n" for i in range(1000)
    )
    text = "defaults: {interval: 3s, timeout: 1s}\ntargets:\n" + targets
    code, out, err = validate(tmp_path, text + "scheduler: {max_concurrency: 200}\n")
    assert code == 0 and "valid" in out, err
    assert (
        "warning: scheduler.max_concurrency 200 is below the 334 probes that can be in "
        "flight at once at 20,000 probes/min x 1 s (each run taking up to its timeout); "
        "runs would wait for a slot and be skipped" in err
    )
    assert err.count("warning:") == 1, err  # unset, the limit is derived: see test_concurrency
