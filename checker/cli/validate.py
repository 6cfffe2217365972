"""`checker validate`: what loading a config cannot see, checked before the service runs.

Problems (exit 2, one line each, with the file and line): a channel URL that Apprise cannot
parse. Warnings: a single failure that would page, a public listen address without basic
auth, inline API keys in a file others can read, a timeout longer than the interval, a
`scheduler.max_concurrency` below the probes that can be in flight at once.
"""

from __future__ import annotations

import ipaddress
import re
import stat
from pathlib import Path

import yaml

from checker.config.load import locate
from checker.config.schema import Config
from checker.service.concurrency import shortfall
from checker.web.server import parse_listen

__all__ = ["channel_problems", "config_warnings", "probe_costs", "raw_channel_problems"]

# An `api_key:` (or header) written as a literal, not ${VAR} or credential:NAME.
_INLINE_KEY = re.compile(
    r"^\s*-?\s*(api_key|authorization|x-api-key)\s*:\s*(?![\"']?(\$\{|credential:))\S",
    re.IGNORECASE | re.MULTILINE,
)


def channel_problems(path: Path, cfg: Config) -> list[str]:
    """Each notify URL Apprise cannot parse, at its line (Apprise loads only here)."""
    return _url_problems(path, [spec.url.get_secret_value() for spec in cfg.notify])


def raw_channel_problems(path: Path) -> list[str]:
    """The same check on a file that did not load, so that one pass reports its channel
    URLs too: the literal ones (a ${VAR} or credential: URL needs the loaded config)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    notify = doc.get("notify") if isinstance(doc, dict) else None
    if not isinstance(notify, list):
        return []
    urls = [e.get("url") if isinstance(e, dict) else None for e in notify]
    return _url_problems(
        path,
        [u if isinstance(u, str) and "${" not in u and "credential:" not in u else None
         for u in urls],
    )  # fmt: skip


def _url_problems(path: Path, urls: list[str | None]) -> list[str]:
    from checker.alerting.deliver import load_plugins, parses

    load_plugins()
    text = path.read_text(encoding="utf-8")
    problems = []
    for i, url in enumerate(urls):
        if url is not None and not parses(url):
            scheme = url.split("://", 1)[0] or "(none)"
            problems.append(
                f"{locate(text, str(path), ('notify', i, 'url'))}: Apprise cannot use this "
                f"URL (scheme {scheme!r}, or a required part such as a host, token or "
                "address is missing); see https://github.com/caronc/apprise/wiki"
            )
    return problems


def _public(listen: str) -> bool:
    host, _ = parse_listen(listen)
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host not in ("localhost",)


def config_warnings(path: Path | None, cfg: Config) -> list[str]:
    """Things that are valid but probably not what the operator meant."""
    from checker.alerting.slo import single_failure_pages

    warnings = []
    for t in cfg.targets:
        slo = cfg.slo(t)
        if single_failure_pages(cfg.interval(t), slo):
            warnings.append(
                f"target {t.name}: with interval {cfg.interval(t):g}s and objective "
                f"{slo.availability:.3%}, a single failed probe would page; "
                "raise slo.min_bad, probe more often or relax the objective"
            )
        if cfg.timeout(t) > cfg.interval(t):
            warnings.append(
                f"target {t.name}: timeout {cfg.timeout(t):g}s is longer than its interval "
                f"{cfg.interval(t):g}s; a slow route skips runs instead of being probed"
            )
    if (short := shortfall(cfg)) is not None:
        warnings.append(str(short))
    if cfg.server is not None and cfg.server.basic_auth is None and _public(cfg.server.listen):
        warnings.append(
            f"server.listen {cfg.server.listen} is reachable from other machines and has no "
            "basic_auth: anyone there can read the status page and metrics"
        )
    if path is not None and path.exists():
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
        if mode & (stat.S_IRGRP | stat.S_IROTH) and _INLINE_KEY.search(text):
            warnings.append(
                f"{path}: holds API keys inline and others can read it (mode "
                f"{stat.S_IMODE(mode):o}); use ${{VAR}} or credential:NAME, or chmod 600"
            )
    return warnings


def probe_costs(cfg: Config) -> list[str]:
    """What each paid probe is expected to cost per day at its interval (the prefill and
    cache probes send long prompts on every run), and the total, at list or override
    prices; probes without a known price are named as such."""
    from datetime import UTC, datetime

    from checker.cost.prices import PriceBook
    from checker.cost.probe_usage import expected_usage

    book = PriceBook(cfg)
    now = datetime.now(UTC)
    lines: list[str] = []
    total = 0.0
    for t in cfg.targets:
        runs = 86400.0 / cfg.interval(t)
        for probe in t.probe_names:
            usage = expected_usage(t, probe)
            if usage is None:
                continue
            each = book.expected_cost(t, probe, now)
            tokens = f"{usage[0]:,} prompt + {usage[1]:,} output tokens a run"
            if each is None:
                lines.append(f"cost: {t.name}/{probe}: no known price ({tokens})")
                continue
            total += each * runs
            lines.append(
                f"cost: {t.name}/{probe}: about ${each * runs:.4f}/day at "
                f"{cfg.interval(t):g}s ({tokens})"
            )
    if lines:
        lines.append(f"cost: all probes: about ${total:.4f}/day")
    return lines
