"""The config's pydantic models: every field validated, every section strict. The `slo:`
and `alerts:` sections live in config/alerts, the shared field types in config/types; both
are re-exported here, the config format's one reference.

Every section rejects unknown keys: a typo must never silently disable a check. Reading the
YAML file (${VAR}, `credential:`, errors by line) is `checker.config.load`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from checker.config.alerts import (
    Alerts,
    BillingRule,
    DownRule,
    LatencyObjective,
    LatencyRule,
    Slo,
)
from checker.config.messages import FieldProblem
from checker.config.types import NAME_PATTERN, Duration, Fraction, Name, Strict
from checker.cron import crontab_trigger
from checker.probes import registry
from checker.probes.conditions import parse_condition

__all__ = [
    "NAME_PATTERN",
    "Alerts",
    "BasicAuth",
    "BillingRule",
    "ChannelSpec",
    "Config",
    "Defaults",
    "Digest",
    "DownRule",
    "Duration",
    "Fraction",
    "HttpCheck",
    "KnownAnswer",
    "LatencyObjective",
    "LatencyRule",
    "Maintenance",
    "Name",
    "Pricing",
    "ReferenceWorkload",
    "Scheduler",
    "Server",
    "Slo",
    "Storage",
    "Strict",
    "Target",
]


class Pricing(Strict):
    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    usd_per_unit: float | None = Field(default=None, gt=0)
    markup: Fraction | None = None

    @model_validator(mode="after")
    def _rate_for_currency(self) -> Pricing:
        if self.currency != "USD" and self.usd_per_unit is None:
            raise ValueError(f"currency {self.currency} needs usd_per_unit (its fixed USD rate)")
        return self


class KnownAnswer(Strict):
    prompt: str = "What is 17 + 25? Reply with the number only."
    expect: str = r"\b42\b"

    @field_validator("expect")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"expected a regular expression ({exc})") from None
        return v


class HttpCheck(Strict):
    method: Literal["GET", "POST", "HEAD"] = "GET"
    body: str | None = None
    json_body: dict[str, Any] | list[Any] | None = Field(default=None, alias="json")
    conditions: list[str] = ["status == 200"]

    @field_validator("conditions")
    @classmethod
    def _parse_conditions(cls, v: list[str]) -> list[str]:
        for text in v:
            parse_condition(text)
        return v


class Target(Strict):
    name: Name
    kind: Literal["openai", "anthropic", "http"]
    base_url: str = Field(pattern=r"^https?://\S+$")
    api_key: SecretStr | None = None
    model: str | None = None
    probes: list[str] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    read_timeout: Duration | None = None
    connect_timeout: Duration | None = None
    reuse_connections: bool = False
    verify_tls: bool = True
    headers: dict[str, SecretStr] = {}
    tags: list[str] = []
    # Only nodes at these locations probe it (None: every node).
    locations: list[Name] | None = None
    expect_model: str | None = None
    max_tokens: int = Field(default=16, ge=1, le=4096)
    # A unique line at the end of every chat/stream prompt, so no response cache answers.
    fresh_prompt: bool = True
    # The prefill probe's prompt length (Artificial Analysis measures 100, 1k, 10k, 100k).
    prefill_tokens: int = Field(default=1000, ge=16, le=200_000)
    # The cache probe's shared prefix: at least the providers' 1,024-token minimum.
    cache_prefix_tokens: int = Field(default=1100, ge=1024, le=200_000)
    # Sent as `reasoning_effort` (OpenAI) to reasoning models: the lowest the API accepts.
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    # A probe costing more than this opens a `probe_cost` ticket; None: 10x its expected cost.
    probe_cost_max_usd: float | None = Field(default=None, gt=0)
    prompt: str = "Count from 1 to 10, separated by spaces."
    known_answer: KnownAnswer = KnownAnswer()
    http: HttpCheck = HttpCheck()
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    max_stream_events: int = Field(default=10_000, ge=10)
    slo: Slo | None = None
    alerts: Alerts | None = None
    pricing: Pricing | None = None
    spend_cap_usd_per_day: float | None = Field(default=None, gt=0)
    # The longest a 429's Retry-After may hold this target (default: defaults').
    retry_after_max: Duration | None = None
    anthropic_version: str = "2023-06-01"
    # Route comparison: targets are compared with the others of their group (default: the
    # same `model`; set `group` when a relay renames the model). One per group may be the
    # `reference` (the direct provider) the others are measured against.
    group: str | None = Field(default=None, min_length=1)
    reference: bool = False
    # The probe whose figures are the target's headline (default: registry.PRIMARY_ORDER).
    primary_probe: str | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("expect_model")
    @classmethod
    def _model_regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"expected a regular expression ({exc})") from None
        return v

    @field_validator("probes")
    @classmethod
    def _probes_exist(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        # Each unknown or repeated probe at its own line (its index), all in one pass.
        kind = info.data.get("kind")
        if v is None or kind is None:
            return v
        allowed = registry.probe_names(kind)
        problems: list[tuple[tuple[Any, ...], str]] = []
        for i, probe in enumerate(v):
            if probe not in allowed:
                problems.append(
                    ((i,), f"probe {probe!r} does not exist for kind {kind}; "
                     f"expected one of {', '.join(allowed)}")
                )  # fmt: skip
            elif probe in v[:i]:
                problems.append(((i,), f"probe {probe!r} is listed twice"))
        if problems:
            raise FieldProblem(problems)
        return v

    @model_validator(mode="after")
    def _probes_fit_kind(self) -> Target:
        if self.kind != "http" and not self.model and (set(self.probes or ["stream"]) - {"models"}):
            raise ValueError(f"kind {self.kind} needs `model` for chat/stream probes")
        if self.primary_probe is not None and self.primary_probe not in self.probe_names:
            raise ValueError(
                f"primary_probe {self.primary_probe!r} is not one of the target's probes "
                f"({', '.join(self.probe_names)})"
            )
        return self

    @property
    def probe_names(self) -> list[str]:
        return list(self.probes) if self.probes is not None else registry.default_probes(self.kind)

    @property
    def primary(self) -> str:
        """The probe whose figures stand for this target in status, pages and metrics."""
        return self.primary_probe or registry.primary_probe(self.probe_names) or self.kind

    @property
    def compare_group(self) -> str | None:
        """The routes this one is compared with: its `group`, else its model."""
        return self.group or self.model


@dataclass(frozen=True)
class ProbeLayout:
    """Target name -> its configured probes, and -> the probe its headline figures are."""

    probes: dict[str, list[str]]
    primary: dict[str, str]


class Defaults(Strict):
    interval: Duration = 60.0
    timeout: Duration = 30.0
    read_timeout: Duration = 15.0
    connect_timeout: Duration = 5.0
    # A Retry-After of a day (or year 9999) must not stop probing a route silently.
    retry_after_max: Duration = 600.0
    slo: Slo = Slo()
    alerts: Alerts = Alerts()


class ChannelSpec(Strict):
    """One `notify:` entry as written; `alerting.outbox.Channel` is the resolved channel."""

    url: SecretStr
    tags: list[str] = []
    # How long one delivery may take; a slower channel gets at most one duplicate.
    timeout: Duration = 30.0


class Maintenance(Strict):
    cron: str
    duration: Duration
    timezone: str = "UTC"
    targets: list[str] | None = None  # None: every target

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        # crontab numbering (0 and 7 are Sunday), not APScheduler's (0 is Monday).
        try:
            crontab_trigger(v, "UTC")
        except ValueError as exc:
            raise ValueError(f"expected a 5-field crontab like '0 3 * * sun' ({exc})") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)


class ReferenceWorkload(Strict):
    input_tokens_per_month: int = Field(default=10_000_000, ge=0)
    output_tokens_per_month: int = Field(default=2_000_000, ge=0)
    cached_input_share: Fraction | None = None


class Digest(Strict):
    at: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"
    tags: list[str] = ["digest"]
    reference_workload: ReferenceWorkload = ReferenceWorkload()
    # Reported completion_tokens / tokens counted from the text outside this band is flagged.
    usage_ratio_band: tuple[float, float] = (0.8, 1.25)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)


class Storage(Strict):
    url: str | None = None  # default: sqlite file in the state directory
    raw_retention: Duration = 14 * 86400.0
    rollup_retention: Duration = 400 * 86400.0
    queue_max: int = Field(default=100_000, ge=100)
    flush_every: Duration = 1.0
    flush_batch: int = Field(default=500, ge=1)
    # /healthz turns 503 when results could not be written for longer than this.
    unhealthy_after: Duration = 10.0

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        state = Path(os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "var")
        return f"sqlite:///{state / 'checker.db'}"


class Scheduler(Strict):
    # Probes in flight at once. Unset: derived from the targets (each job's timeout /
    # interval, at most 1, summed, with headroom; checker.service.concurrency), so a slow
    # route never makes the others wait for a slot.
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    misfire_grace: Duration = 30.0
    shutdown_grace: Duration = 5.0
    evaluate_every: Duration = 30.0


class BasicAuth(Strict):
    username: str
    password: SecretStr


class Server(Strict):
    listen: str = Field(default="127.0.0.1:9464", pattern=r"^\S+:\d{1,5}$")
    title: str = Field(
        default="checker",
        min_length=1,
        max_length=80,
        description="The status page's heading and window title (shown as text, never markup).",
    )
    public_url: str | None = None
    basic_auth: BasicAuth | None = None


class Config(Strict):
    location: Name = "local"
    defaults: Defaults = Defaults()
    targets: list[Target] = Field(min_length=1)
    notify: list[ChannelSpec] = []
    apprise_config: str | None = None

    @field_validator("apprise_config")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        # Apprise reads the file lazily: an unreadable one would silently mean no channels.
        if v is not None and not os.access(v, os.R_OK):
            raise ValueError(f"cannot read the Apprise config file {v!r}")
        return v

    maintenance: list[Maintenance] = []
    digest: Digest = Digest()
    storage: Storage = Storage()
    scheduler: Scheduler = Scheduler()
    server: Server | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        first: dict[str, int] = {}
        twice: list[tuple[tuple[Any, ...], str]] = []
        for i, t in enumerate(self.targets):
            if t.name in first:
                # At the second definition: the first is the one the operator meant to keep.
                twice.append(
                    (("targets", i, "name"), f"target name {t.name!r} is already used by "
                     f"targets[{first[t.name]}]; names must be unique")
                )  # fmt: skip
            first.setdefault(t.name, i)
        if twice:
            raise FieldProblem(twice)
        names = {t.name for t in self.targets}
        for m in self.maintenance:
            for name in m.targets or []:
                if name not in names:
                    raise ValueError(f"maintenance names unknown target {name!r}")
        references: dict[str, str] = {}
        for t in self.targets:
            group = t.compare_group
            if t.reference and group is not None:
                if group in references:
                    raise ValueError(
                        f"targets {references[group]!r} and {t.name!r} are both the reference "
                        f"of group {group!r}; expected at most one `reference: true` per group"
                    )
                references[group] = t.name
        return self

    def probe_layout(self) -> ProbeLayout:
        """Each target's probes and primary probe, for store.queries.status.status()."""
        return ProbeLayout(
            probes={t.name: t.probe_names for t in self.targets},
            primary={t.name: t.primary for t in self.targets},
        )

    # Effective per-target settings: target value, else the top-level default.
    def interval(self, t: Target) -> float:
        return t.interval or self.defaults.interval

    def retry_after_max(self, t: Target) -> float:
        return t.retry_after_max or self.defaults.retry_after_max

    def timeout(self, t: Target) -> float:
        return t.timeout or self.defaults.timeout

    def read_timeout(self, t: Target) -> float:
        return min(t.read_timeout or self.defaults.read_timeout, self.timeout(t))

    def connect_timeout(self, t: Target) -> float:
        return min(t.connect_timeout or self.defaults.connect_timeout, self.timeout(t))

    def slo(self, t: Target) -> Slo:
        return t.slo or self.defaults.slo

    def alerts(self, t: Target) -> Alerts:
        return t.alerts or self.defaults.alerts

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    def secrets(self) -> list[str]:
        """Every secret string in the config, for redaction of all output."""
        found: list[str] = []
        for t in self.targets:
            if t.api_key:
                found.append(t.api_key.get_secret_value())
            found.extend(v.get_secret_value() for v in t.headers.values())
        for ch in self.notify:
            found.extend(_url_secrets(ch.url.get_secret_value()))
        if self.server and self.server.basic_auth:
            found.append(self.server.basic_auth.password.get_secret_value())
        return [s for s in found if s]


def _check_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"expected an IANA time zone like Europe/Berlin (got {v!r})") from None
    return v


_SECRET_QUERY_KEYS = re.compile(r"(token|key|secret|pass|auth|sig|webhook|hook|session)", re.I)


def _looks_like_token(text: str) -> bool:
    """Random-looking credentials (Slack's T0AB12CD3/..., API keys), not words or hosts."""
    if len(text) >= 20:
        return True
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    return len(text) >= 8 and has_digit and has_alpha and "." not in text and "@" not in text


def _url_secrets(url: str) -> list[str]:
    """The whole notification URL and its credential-like parts (tokens live in paths too).

    Plain settings (`mode=insecure`, `to=ops@example.com`, a host name) stay readable in
    logs: masking every word would hide what went wrong without protecting anything."""
    parts = [url]
    try:
        u = urlsplit(url)
    except ValueError:
        return parts
    if u.password:
        parts.append(unquote(u.password))
    # Webhook tokens are path segments (slack://T/B/XXXX) or query values (?token=...).
    parts.extend(seg for seg in u.path.split("/") if seg and _looks_like_token(seg))
    # Some schemes carry tokens where host and port go (tgram://BOT_ID:TOKEN/...).
    for piece in u.netloc.rsplit("@", 1)[-1].split(":"):
        if piece and "." not in piece and _looks_like_token(piece):
            parts.append(piece)
    for key, value in parse_qsl(u.query):
        if value and (_SECRET_QUERY_KEYS.search(key) or _looks_like_token(value)):
            parts.append(value)
    return parts
