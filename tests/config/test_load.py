"""Config loading: each broken file gets one precise line; valid files parse to the right values."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from checker.config import load as config
from checker.units import format_duration, parse_duration, parse_fraction
from tests.tools import run_cli

VALID = """\
targets:
  - name: deepseek-direct
    kind: openai
    base_url: https://api.deepseek.com/v1/
    api_key: ${CHECKER_TEST_KEY}
    model: deepseek-chat
    probes: [models, stream, known_answer]
    interval: 60s
    timeout: 30s
    tags: [prod]
    slo: {availability: 99.5%, window: 30d, latency: {ttft_ms: 2000, objective: 95%}}
    pricing: {input_per_mtok: 0.28, output_per_mtok: 0.42}
  - name: health
    kind: http
    base_url: http://127.0.0.1:8080/health
    http: {conditions: ["status == 200", 'json.status == "ok"', "latency_ms < 300"]}
notify:
  - {url: "json://127.0.0.1:9/hook?token=abcdefgh12345", tags: [page]}
digest: {at: "08:00", timezone: Europe/Berlin, tags: [digest]}
storage: {url: "sqlite:///var/test.db"}
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKER_TEST_KEY", "sk-test-0123456789")


def test_valid_config_parses_units_and_defaults() -> None:
    cfg = config.parse(VALID, "c.yaml")
    ds = cfg.target("deepseek-direct")
    assert ds.base_url == "https://api.deepseek.com/v1"
    assert ds.api_key is not None and ds.api_key.get_secret_value() == "sk-test-0123456789"
    assert cfg.interval(ds) == 60.0 and cfg.timeout(ds) == 30.0
    slo = cfg.slo(ds)
    assert slo.availability == pytest.approx(0.995) and slo.window == 30 * 86400
    assert slo.latency is not None and slo.latency.metric == "ttft_ms"
    assert slo.latency.objective == pytest.approx(0.95)
    health = cfg.target("health")
    assert health.probe_names == ["http"]
    assert cfg.slo(health).availability == pytest.approx(0.995)  # top-level default
    assert cfg.read_timeout(health) == 15.0
    assert "sk-test-0123456789" in cfg.secrets()
    assert "abcdefgh12345" in cfg.secrets()


def test_secret_never_in_repr() -> None:
    cfg = config.parse(VALID, "c.yaml")
    assert "sk-test-0123456789" not in repr(cfg)
    assert "sk-test-0123456789" not in cfg.model_dump_json()


def test_credential_from_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "openai").write_text("sk-from-systemd-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    text = VALID.replace("${CHECKER_TEST_KEY}", "credential:openai")
    cfg = config.parse(text, "c.yaml")
    key = cfg.target("deepseek-direct").api_key
    assert key is not None and key.get_secret_value() == "sk-from-systemd-credential"


def _broken(replace: str, by: str) -> str:
    assert replace in VALID, replace
    return VALID.replace(replace, by, 1)


BROKEN = [
    # (description, text, expected line fragment)
    (
        "typo in a key",
        _broken("    interval: 60s", "    intervall: 60s"),
        "c.yaml:8: targets[0].intervall: unknown key",
    ),
    (
        "bad duration",
        _broken("interval: 60s", "interval: 60 seconds"),
        "c.yaml:8: targets[0].interval: expected a duration like 500ms, 30s, 1m30s, 5m, 1h, 30d",
    ),
    (
        "bad percentage",
        _broken("availability: 99.5%", "availability: 150%"),
        "targets[0].slo.availability: expected a percentage strictly between 0% and 100%",
    ),
    (
        "missing env var",
        _broken("${CHECKER_TEST_KEY}", "${CHECKER_NOT_SET_ANYWHERE}"),
        "c.yaml:5: targets[0].api_key: environment variable CHECKER_NOT_SET_ANYWHERE is not set",
    ),
    (
        "bad target name",
        _broken("name: health", "name: Health_Check"),
        "c.yaml:13: targets[1].name: expected lowercase letters, digits and '-'",
    ),
    (
        "unknown kind",
        _broken("kind: http", "kind: grpc"),
        "c.yaml:14: targets[1].kind: expected one of openai, anthropic or http",
    ),
    (
        "probe that does not exist for the kind",
        _broken("probes: [models, stream, known_answer]", "probes: [models, streem]"),
        "c.yaml:7: targets[0].probes[1]: probe 'streem' does not exist for kind openai",
    ),
    (
        "bad condition",
        _broken('"status == 200"', '"status = 200"'),
        "targets[1].http.conditions: condition 'status = 200': expected `SUBJECT OP VALUE`",
    ),
    (
        "duplicate target names",
        _broken("name: health", "name: deepseek-direct"),
        "c.yaml:13: targets[1].name: target name 'deepseek-direct' is already used by targets[0]",
    ),
    (
        "bad time zone",
        _broken("timezone: Europe/Berlin", "timezone: Mars/Olympus"),
        "digest.timezone: expected an IANA time zone like Europe/Berlin",
    ),
    (
        "bad url",
        _broken("base_url: http://127.0.0.1:8080/health", "base_url: 127.0.0.1:8080"),
        "c.yaml:15: targets[1].base_url: expected an http:// or https:// URL",
    ),
    (
        "missing model for chat probes",
        _broken("    model: deepseek-chat\n", ""),
        "targets[0]: kind openai needs `model` for chat/stream probes",
    ),
    (
        "currency without a rate",
        _broken("output_per_mtok: 0.42}", "output_per_mtok: 0.42, currency: CNY}"),
        "targets[0].pricing: currency CNY needs usd_per_unit",
    ),
    ("invalid yaml", VALID + "  - [unclosed\n", "c.yaml:"),
    ("not a mapping", "- just a list\n", "c.yaml:1: (top level): expected a mapping"),
    ("no targets", "targets: []\n", "c.yaml:1: targets: expected at least 1 item"),
]


@pytest.mark.parametrize(("what", "text", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_gives_precise_line(what: str, text: str, expected: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "c.yaml")
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_all_problems_reported_at_once() -> None:
    text = _broken("interval: 60s", "interval: soon").replace("kind: http", "kind: grpc")
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "c.yaml")
    assert len(info.value.problems) == 2


PYDANTIC_WORDS = ("Input should", "should be a valid", "Field required", "Extra inputs")


def test_problems_in_our_words_each_on_its_own_line() -> None:
    # Wrong types everywhere, two unknown probes in a block list, a repeated probe: every
    # problem at the line where it is, and none in pydantic's words.
    text = _broken(
        "    probes: [models, stream, known_answer]",
        "    probes:\n      - models\n      - streem\n      - models\n      - kache",
    )
    text = text.replace("tags: [prod]", "tags: prod").replace(
        "    timeout: 30s", "    timeout: 30s\n    verify_tls: maybe\n    max_tokens: lots"
    )
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "c.yaml")
    problems = info.value.problems
    assert not [p for p in problems if any(w in p for w in PYDANTIC_WORDS)], problems
    expected = [
        "c.yaml:9: targets[0].probes[1]: probe 'streem' does not exist for kind openai",
        "c.yaml:10: targets[0].probes[2]: probe 'models' is listed twice",
        "c.yaml:11: targets[0].probes[3]: probe 'kache' does not exist for kind openai",
        "c.yaml:14: targets[0].verify_tls: expected true or false",
        "c.yaml:15: targets[0].max_tokens: expected a whole number",
        "c.yaml:16: targets[0].tags: expected a list",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)


def test_compound_durations() -> None:
    cfg = config.parse(_broken("interval: 60s", "interval: 1m30s"), "c.yaml")
    assert cfg.interval(cfg.target("deepseek-direct")) == 90.0
    assert parse_duration("1h 30m") == 5400.0
    assert parse_duration("2d12h") == 216000.0
    for typo in ("30s1m", "1m1m", "1m30", "m"):
        with pytest.raises(ValueError, match="expected a duration like"):
            parse_duration(typo)


def _cli(*args: str, env_key: bool = True) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    if env_key:
        env["CHECKER_TEST_KEY"] = "sk-test-0123456789"
    else:
        env.pop("CHECKER_TEST_KEY", None)
    return run_cli(*args, env=env)


def test_validate_cli_ok_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    ok = _cli("validate", "-c", str(good))
    assert ok.returncode == 0, ok.stderr
    summary, *costs = ok.stdout.strip().splitlines()
    assert summary == f"{good}: valid: 2 targets, 4 probes, 1 notification channels"
    assert costs and all(line.startswith("cost: ") for line in costs)  # paid probes, per day

    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(_broken("interval: 60s", "intervall: 60s")))
    res = _cli("validate", "-c", str(bad))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip() == f"error: {bad}:8: targets[0].intervall: unknown key " + (
        "(check the spelling; unknown keys are rejected)"
    )

    missing = _cli("validate", "-c", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_missing_env_var_never_sends(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(VALID)
    res = _cli("check", "-c", str(f), env_key=False)
    assert res.returncode == 2
    assert "environment variable CHECKER_TEST_KEY is not set" in res.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("30d", 2_592_000), (15, 15)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1y", "-1s", "0s", True, None])
def test_bad_durations(text: object) -> None:
    # A bare string number is ambiguous in YAML; only real numbers mean seconds.
    with pytest.raises(ValueError):
        parse_duration(text)


def test_fractions_and_formatting() -> None:
    assert parse_fraction("99.5%") == pytest.approx(0.995)
    assert parse_fraction(0.9) == 0.9
    for bad in ("100%", "0%", "abc", 1.5):
        with pytest.raises(ValueError):
            parse_fraction(bad)
    assert format_duration(3600) == "1h" and format_duration(90) == "90s"
    assert format_duration(0.25) == "250ms"


def test_validate_warns_when_one_failure_would_page(tmp_path: Path) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(
        textwrap.dedent(
            """\
            targets:
              - name: touchy
                kind: http
                base_url: http://127.0.0.1:9/
                interval: 60s
                slo: {availability: 99.9%, min_bad: 1}
              - name: calm
                kind: http
                base_url: http://127.0.0.1:9/
                interval: 60s
                slo: {availability: 99.9%, min_bad: 3}
            """
        )
    )
    res = _cli("validate", "-c", str(f))
    assert res.returncode == 0
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "target touchy" in warnings[0]
    assert "a single failed probe would page" in warnings[0]


@pytest.mark.parametrize(
    ("url", "masked", "readable"),
    [
        (
            "mailto://user:p%40ss@127.0.0.1:25?from=checker@example.com&mode=insecure",
            ["p@ss"],
            ["insecure", "checker@example.com"],
        ),
        (
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
            ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"],
            [],
        ),
        ("json://127.0.0.1:9/hook?token=abcdefgh12345", ["abcdefgh12345"], ["hook"]),
        (
            "tgram://123456789:AAHnOIkUnJ6r9W6VmIGHVIzmxtaNMQhoMt0/",
            ["AAHnOIkUnJ6r9W6VmIGHVIzmxtaNMQhoMt0"],
            [],
        ),
    ],
)
def test_notification_url_secrets(url: str, masked: list[str], readable: list[str]) -> None:
    from checker.config.schema import _url_secrets

    found = _url_secrets(url)
    assert found[0] == url  # the whole URL is always a secret
    for part in masked:
        assert part in found
    for part in readable:
        assert part not in found


def test_big_files_are_read_with_libyaml() -> None:
    """The pure-Python YAML loader took 0.2 s of CPU for 200 targets (`checker status`
    reads the config on every call); PyYAML's wheels bundle libyaml."""
    import yaml

    assert yaml.__with_libyaml__
    assert config._YAML_LOADER is yaml.CSafeLoader
    text = "targets:\n" + "".join(
        f"  - {{name: t{i}, kind: openai, base_url: 'http://h/v1', model: m}}\n" for i in range(3)
    )
    assert [t.name for t in config.parse(text).targets] == ["t0", "t1", "t2"]
    with pytest.raises(config.ConfigError) as err:
        config.parse(text.replace("model: m}", "model: m, colour: red}", 1), "big.yaml")
    assert str(err.value).splitlines() == [
        "big.yaml:2: targets[0].colour: unknown key (check the spelling; unknown keys are rejected)"
    ]
