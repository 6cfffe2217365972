"""The Prometheus side: rules and dashboard query only metrics checker exports, promtool
accepts the rules and their unit tests, and the exposition itself passes `promtool check
metrics`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from checker.web.metrics import Metrics
from tests.tools import required_tool

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "examples" / "prometheus" / "rules_test.yml"
DASHBOARD = ROOT / "examples" / "grafana" / "checker.json"
PROMTOOL_INSTALL = "apt-get install -y prometheus"

# A metric name in PromQL: not part of a recording rule name (those hold colons).
METRIC_NAME = re.compile(r"(?<![\w:])checker_[a-z0-9_]+(?![\w:])")


@pytest.fixture
def promtool() -> str:
    return required_tool("promtool", PROMTOOL_INSTALL)


def busy_metrics() -> Metrics:
    """A registry with a sample in every metric, as after a while of probing and alerting."""
    m = Metrics()
    m.observe(
        ProbeResult(
            "alpha",
            "stream",
            ok=True,
            latency_ms=1800,
            ttft_ms=420,
            tokens_per_s=61.5,
            cost_usd=0.00012,
        )
    )
    m.observe(ProbeResult("alpha", "models", ok=True, status=200, latency_ms=90, connect_ms=2))
    m.observe(ProbeResult("alpha", "chat", ok=True, status=200, latency_ms=900, ttfb_ms=880))
    m.observe(ProbeResult("beta", "stream", ok=False, error=ErrorKind.rate_limited), 0.2)
    m.observe(ProbeResult("beta", "known_answer", ok=False, error=ErrorKind.wrong_answer))
    m.bind_queue(lambda: 3, lambda: 0)
    m.uptime.labels("alpha", "24h").set(0.9987)
    m.budget.labels("alpha").set(0.74)
    m.burn.labels("alpha", "1h").set(0.4)
    m.lag.observe(0.004)
    m.delivery_failures.inc()
    m.reloads.labels("ok").inc()
    m.outbox.set(2)
    m.usage_mismatch.labels("beta").inc()
    cfg = parse(
        "targets:\n"
        "  - {name: alpha, kind: openai, base_url: 'https://alpha.test/v1', model: m}\n"
        "  - {name: beta, kind: openai, base_url: 'http://beta.test/v1', model: m}\n"
    )
    m.bind_targets(lambda: cfg, lambda: {"alpha": datetime(2027, 1, 1, tzinfo=UTC)})
    return m


def exported_names(m: Metrics) -> set[str]:
    """Every series name the registry exposes (with _bucket, _total, ... suffixes)."""
    return {sample.name for family in m.registry.collect() for sample in family.samples}


def rule_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows nest theirs


def test_every_metric_the_rules_query_is_exported() -> None:
    names = exported_names(busy_metrics())
    queried: dict[str, set[str]] = {}
    for rule, expr in rule_expressions():
        queried[rule] = set(METRIC_NAME.findall(expr))
    assert set().union(*queried.values()) >= {
        "checker_probe_results_total",
        "checker_slo_objective",
        "checker_writer_dropped_total",
        "checker_probe_up",
        "checker_notification_delivery_failures_total",
        "checker_writer_queue_depth",
    }
    unknown = {rule: found - names for rule, found in queried.items() if found - names}
    assert unknown == {}


DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_is_valid_and_queries_only_exported_metrics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["schemaVersion"] >= 39
    # File provisioning fills no __inputs: the data source is a template variable instead.
    assert "__inputs" not in doc
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard_panels(doc) if p["type"] != "row"]
    ids = [p["id"] for p in dashboard_panels(doc)]
    assert len(ids) == len(set(ids))
    names = exported_names(busy_metrics())
    queried: set[str] = set()
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            found = set(METRIC_NAME.findall(target["expr"]))
            assert found, f"{panel['title']}: {target['expr']}"
            assert found <= names, f"{panel['title']}: unknown {found - names}"
            queried |= found
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
            queried |= set(METRIC_NAME.findall(var["definition"]))
    assert "DS_PROMETHEUS" not in DASHBOARD.read_text()
    # Every panel the operations issue asks for has its metric on the dashboard.
    assert queried >= {
        "checker_probe_up",
        "checker_uptime_ratio",
        "checker_probe_ttft_seconds_bucket",
        "checker_probe_latency_seconds_bucket",
        "checker_probe_tokens_per_second_bucket",
        "checker_probe_results_total",
        "checker_slo_burn_rate",
        "checker_slo_error_budget_remaining_ratio",
        "checker_probe_spend_usd_total",
        "checker_outbox_depth",
        "checker_writer_queue_depth",
        "checker_writer_dropped_total",
        "checker_target_info",
    }


def test_dashboard_compares_the_routes_of_one_model() -> None:
    doc = json.loads(DASHBOARD.read_text())
    compare = [p for p in dashboard_panels(doc) if "$group" in p.get("title", "")]
    assert len(compare) == 1
    panel = compare[0]
    exprs = [t["expr"] for t in panel["targets"]]
    # One probe, the routes of one compare group, one row per route.
    assert all('probe="$probe"' in e and 'group="$group"' in e for e in exprs)
    assert exprs[0].startswith("histogram_quantile(0.5, sum by (target, le)")
    assert "checker_probe_ttft_seconds_bucket" in exprs[0]
    assert 'result!="ok"' in exprs[1]  # the error ratio
    assert exprs[2].startswith("sum by (target) (increase(checker_probe_results_total")  # n
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"group", "probe"} <= variables


def test_the_compare_panel_computes_ttft_p50_error_ratio_and_n(
    promtool: str, tmp_path: Path
) -> None:
    """The compare table's queries, run by promtool over an hour of scraped series: two
    routes of model m (one exported by two nodes), a route of another model, and a prefill
    probe whose TTFT must not leak into the stream probe's."""
    doc = json.loads(DASHBOARD.read_text())
    panel = next(p for p in dashboard_panels(doc) if "$group" in p.get("title", ""))

    def bucketed(target: str, probe: str, le_hit: float) -> list[dict[str, str]]:
        # One observation a minute, every one in the bucket up to `le_hit`.
        out = []
        for le in ("0.2", "0.3", "0.75", "1", "10", "+Inf"):
            grows = le == "+Inf" or float(le) >= le_hit
            labels = f'target="{target}",probe="{probe}",location="east",le="{le}"'
            values = "0+1x60" if grows else "0+0x60"
            out.append(
                {"series": f"checker_probe_ttft_seconds_bucket{{{labels}}}", "values": values}
            )
        return out

    def results(target: str, result: str, per_minute: int) -> dict[str, str]:
        labels = f'target="{target}",probe="stream",location="east",result="{result}"'
        return {
            "series": f"checker_probe_results_total{{{labels}}}",
            "values": f"0+{per_minute}x60",
        }

    def info(target: str, group: str, instance: str) -> dict[str, str]:
        labels = f'target="{target}",group="{group}",instance="{instance}"'
        return {"series": f"checker_target_info{{{labels}}}", "values": "1+0x60"}

    series = [
        *bucketed("direct", "stream", 0.3),  # p50 in (0.2, 0.3]: 0.25
        *bucketed("direct", "prefill", 10),
        *bucketed("relay", "stream", 1),  # p50 in (0.75, 1]: 0.875
        *bucketed("other", "stream", 10),
        results("direct", "ok", 1),
        results("relay", "ok", 3),
        results("relay", "timeout", 1),
        results("other", "timeout", 1),
        info("direct", "m", "east:9464"),
        info("direct", "m", "west:9464"),
        info("relay", "m", "east:9464"),
        info("other", "n", "east:9464"),
    ]
    expected = [
        {"direct": 0.25, "relay": 0.875},  # TTFT p50, seconds
        {"direct": 0, "relay": 0.25},  # error ratio: direct never failed, and is still shown
        {"direct": 60, "relay": 240},  # the probes both rest on
    ]
    tests = []
    for target, want in zip(panel["targets"], expected, strict=True):
        expr = target["expr"]
        for var, value in {"$group": "m", "$probe": "stream", "$__range": "1h"}.items():
            expr = expr.replace(var, value)
        samples = [{"labels": f'{{target="{t}"}}', "value": v} for t, v in want.items()]
        # Rounded: increase() extrapolates, which leaves float noise in the last digits.
        tests.append({"expr": f"round({expr}, 0.0001)", "eval_time": "60m", "exp_samples": samples})
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    spec_file = tmp_path / "compare_test.yml"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        [promtool, "test", "rules", str(spec_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_rules(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    # rules_test.yml: a sustained full outage pages, a short blip does not, and more.
    done = subprocess.run(
        [promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_exposition_is_clean_for_promtool(promtool: str, tmp_path: Path) -> None:
    exposition = tmp_path / "metrics.txt"
    exposition.write_bytes(busy_metrics().render())
    with exposition.open("rb") as stdin:
        done = subprocess.run(
            [promtool, "check", "metrics"], stdin=stdin, capture_output=True, timeout=60
        )
    # promtool prints one line per lint problem (naming, units, counters); clean is silent.
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert b"checker_probe_results_total{" in exposition.read_bytes()
