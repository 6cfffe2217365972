"""The YAML config file: pydantic models and `load()` with one clear line per problem.

Every section rejects unknown keys: a typo must never silently disable a check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from checker.cron import crontab_trigger
from checker.units import parse_duration, parse_fraction

Duration = Annotated[float, BeforeValidator(parse_duration)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]

PROBES_BY_KIND: dict[str, tuple[str, ...]] = {
    "openai": ("models", "chat", "stream", "known_answer"),
    "anthropic": ("models", "chat", "stream", "known_answer"),
    "http": ("http",),
}
DEFAULT_PROBES: dict[str, list[str]] = {
    "openai": ["models", "stream"],
    "anthropic": ["stream"],
    "http": ["http"],
}
# Probes that cost nothing: what a target falls back to once its daily spend cap is reached.
FREE_PROBES = frozenset({"models", "http"})


class ConfigError(Exception):
    """Raised by load(): `problems` holds one human line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyObjective(Strict):
    ttft_ms: float | None = Field(default=None, gt=0)
    latency_ms: float | None = Field(default=None, gt=0)
    objective: Fraction = 0.95

    @model_validator(mode="after")
    def _one_metric(self) -> LatencyObjective:
        if (self.ttft_ms is None) == (self.latency_ms is None):
            raise ValueError("set exactly one of ttft_ms or latency_ms")
        return self

    @property
    def metric(self) -> str:
        return "ttft_ms" if self.ttft_ms is not None else "latency_ms"

    @property
    def threshold_ms(self) -> float:
        return self.ttft_ms if self.ttft_ms is not None else float(self.latency_ms or 0)


class Slo(Strict):
    availability: Fraction = 0.995
    window: Duration = 30 * 86400.0
    latency: LatencyObjective | None = None
    # A relay that throttles you is down for you, so rate limits count as bad by default.
    count_rate_limited: bool = True
    # Low-traffic SLI guard: a burn window fires only with at least this many bad probes.
    min_bad: int = Field(default=3, ge=1)


class DownRule(Strict):
    failures: int = Field(default=3, ge=1)
    recoveries: int = Field(default=2, ge=1)
    confirm: bool = False


class LatencyRule(Strict):
    metric: Literal["ttft_ms", "latency_ms"] = "ttft_ms"
    p95_above_ms: float | None = Field(default=None, gt=0)
    last: int = Field(default=20, ge=3)


class Alerts(Strict):
    down: DownRule = DownRule()
    latency: LatencyRule = LatencyRule()
    burn: bool = True
    budget_below: Fraction | None = 0.25
    cert_days: int | None = Field(default=14, ge=1)
    renotify: Duration = 4 * 3600.0
    flapping_opens_per_hour: int = Field(default=4, ge=2)
    # Which channel tags each rule goes to; unset rules keep their defaults.
    routes: dict[str, list[str]] = {}

    @field_validator("routes")
    @classmethod
    def _known_rules(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        known = {"down", "latency", "burn_page", "burn_ticket", "budget", "spend", "cert"}
        for rule in v:
            if rule not in known:
                raise ValueError(f"unknown rule {rule!r}; expected one of {sorted(known)}")
        return v


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
        from checker.config.conditions import parse_condition

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
    expect_model: str | None = None
    max_tokens: int = Field(default=16, ge=1, le=4096)
    prompt: str = "Count from 1 to 10, separated by spaces."
    known_answer: KnownAnswer = KnownAnswer()
    http: HttpCheck = HttpCheck()
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    max_stream_events: int = Field(default=10_000, ge=10)
    slo: Slo | None = None
    alerts: Alerts | None = None
    pricing: Pricing | None = None
    spend_cap_usd_per_day: float | None = Field(default=None, gt=0)
    anthropic_version: str = "2023-06-01"

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

    @model_validator(mode="after")
    def _probes_fit_kind(self) -> Target:
        allowed = PROBES_BY_KIND[self.kind]
        for probe in self.probes or []:
            if probe not in allowed:
                raise ValueError(
                    f"probe {probe!r} does not exist for kind {self.kind}; "
                    f"expected one of {', '.join(allowed)}"
                )
        if self.probes is not None and len(set(self.probes)) != len(self.probes):
            raise ValueError("probes are listed more than once")
        if self.kind != "http" and not self.model and (set(self.probes or ["stream"]) - {"models"}):
            raise ValueError(f"kind {self.kind} needs `model` for chat/stream probes")
        return self

    @property
    def probe_names(self) -> list[str]:
        return list(self.probes) if self.probes is not None else DEFAULT_PROBES[self.kind]


class Defaults(Strict):
    interval: Duration = 60.0
    timeout: Duration = 30.0
    read_timeout: Duration = 15.0
    connect_timeout: Duration = 5.0
    slo: Slo = Slo()
    alerts: Alerts = Alerts()


class Channel(Strict):
    url: SecretStr
    tags: list[str] = []


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

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        state = Path(os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "var")
        return f"sqlite:///{state / 'checker.db'}"


class Scheduler(Strict):
    max_concurrency: int = Field(default=200, ge=1)
    misfire_grace: Duration = 30.0
    shutdown_grace: Duration = 5.0
    evaluate_every: Duration = 30.0


class BasicAuth(Strict):
    username: str
    password: SecretStr


class Server(Strict):
    listen: str = Field(default="127.0.0.1:9464", pattern=r"^\S+:\d{1,5}$")
    public_url: str | None = None
    basic_auth: BasicAuth | None = None


class Config(Strict):
    location: Name = "local"
    defaults: Defaults = Defaults()
    targets: list[Target] = Field(min_length=1)
    notify: list[Channel] = []
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
        seen: set[str] = set()
        for t in self.targets:
            if t.name in seen:
                raise ValueError(f"target name {t.name!r} is used twice; names must be unique")
            seen.add(t.name)
        names = {t.name for t in self.targets}
        for m in self.maintenance:
            for name in m.targets or []:
                if name not in names:
                    raise ValueError(f"maintenance names unknown target {name!r}")
        return self

    # Effective per-target settings: target value, else the top-level default.
    def interval(self, t: Target) -> float:
        return t.interval or self.defaults.interval

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
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    from urllib.parse import parse_qsl, unquote, urlsplit

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


# --- loading --------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CREDENTIAL = re.compile(r"^credential:([A-Za-z0-9_.-]+)$")


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based YAML line of the deepest node on `loc` that exists."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # A key that should not be there points at the key; otherwise the value.
                    nxt = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def _substitute(data: Any, loc: tuple[Any, ...], errors: list[tuple[tuple[Any, ...], str]]) -> Any:
    """Resolve ${VAR} and credential:NAME in every string value; collect misses as errors."""
    if isinstance(data, dict):
        return {k: _substitute(v, (*loc, k), errors) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, (*loc, i), errors) for i, v in enumerate(data)]
    if not isinstance(data, str):
        return data
    if m := _CREDENTIAL.match(data):
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            errors.append((loc, f"{data} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)"))
            return data
        path = Path(directory) / m.group(1)
        try:
            value = path.read_text().strip()
        except OSError:
            errors.append((loc, f"credential {m.group(1)!r} not found in $CREDENTIALS_DIRECTORY"))
            return data
        if not value:
            errors.append((loc, f"credential {m.group(1)!r} is empty"))
        return value

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None or value == "":
            errors.append((loc, f"environment variable {name} is not set (or empty)"))
            return ""
        return value

    return _ENV.sub(repl, data)


def _iter_pydantic_errors(exc: ValidationError) -> Iterator[tuple[tuple[Any, ...], str]]:
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; unknown keys are rejected)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "name":
            msg = "expected lowercase letters, digits and '-' (like deepseek-direct)"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "base_url":
            msg = "expected an http:// or https:// URL"
        yield loc, msg


# libyaml's loader when PyYAML has it (its wheels do): the pure-Python one took 0.2 s of CPU
# to read a 200-target file, twice over with the node tree for line numbers.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str, filename: str = "<config>") -> Config:
    """Parse and validate config text; raise ConfigError with one line per problem."""
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{where}: (yaml): invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: (top level): expected a mapping with `targets:`"])
    env_errors: list[tuple[tuple[Any, ...], str]] = []
    data = _substitute(data, (), env_errors)
    nodes: list[yaml.Node] = []

    def where(loc: tuple[Any, ...]) -> str:
        # The node tree (for line numbers) is composed only when there is a problem to place.
        if not nodes:
            nodes.append(yaml.compose(text, Loader=_YAML_LOADER))
        return f"{filename}:{_line_of(nodes[0], loc)}: {_fmt_loc(loc)}"

    problems = [f"{where(loc)}: {msg}" for loc, msg in env_errors]
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems += [f"{where(loc)}: {msg}" for loc, msg in _iter_pydantic_errors(exc)]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def load(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc.__class__.__name__}"]) from None
    return parse(text, str(p))
