"""The `checker` command line: one verb per job, clear one-line errors, exit 2 on bad input."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

# `checker --help` and completion import nothing heavy: pydantic, the config models, asyncio
# and SQLAlchemy load inside the commands that use them (--help: 0.3 s -> under 0.15 s).
if TYPE_CHECKING:
    from checker.config.load import SecretsMode
    from checker.config.schema import Config, Target

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    no_args_is_help=True,
    # Click's plain help: flags read as flags (`--json`), not `--json <bool>`.
    rich_markup_mode=None,
    help="Synthetic monitor for LLM APIs: uptime, latency, TTFT, SLO burn, cost, alerts.",
)


def _version(value: bool) -> None:
    if value:
        from checker import __version__

        print(f"checker {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Synthetic monitor for LLM APIs: uptime, latency, TTFT, SLO burn, cost, alerts."""


db_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Database schema management."
)
app.add_typer(db_app, name="db")

# -c FILE, else $CHECKER_CONFIG, else ./checker.yaml.
ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config", "-c", envvar="CHECKER_CONFIG", help="YAML config file.", show_default=True
    ),
]
DEFAULT_CONFIG = Path("checker.yaml")
# Piped output (CI logs, `make demo`) gets room for the whole table instead of 80 columns.
stdout = Console() if sys.stdout.isatty() else Console(width=160)
stderr = Console(stderr=True)


def fail(lines: list[str] | str, code: int = 2) -> NoReturn:
    for line in [lines] if isinstance(lines, str) else lines:
        # Plain print: rich markup would eat brackets like targets[0] in messages.
        print(f"error: {line}", file=sys.stderr)
    raise typer.Exit(code)


def load_config(path: Path, secrets: SecretsMode = "all") -> Config:
    """The config, or exit 2 with its problems. Read-only commands pass secrets="storage":
    they need the database, not the API keys."""
    from checker.config.load import ConfigError, load

    try:
        return load(path, secrets)
    except ConfigError as exc:
        fail(exc.problems)


@app.command()
def init(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write it; - prints it.")
    ] = DEFAULT_CONFIG,
    preset: Annotated[
        str,
        typer.Option(help="openai, deepseek-relays (one model, several routes), anthropic, vllm."),
    ] = "openai",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config that validates as written."""
    from checker.cli.init import PRESETS, starter, write_starter

    if preset not in PRESETS:
        fail(f"--preset {preset}: unknown preset; expected one of {', '.join(PRESETS)}")
    if str(output) == "-":
        print(starter(preset), end="")
        return
    try:
        write_starter(output, preset, force)
    except FileExistsError:
        fail(f"{output}: already exists; pass --force to overwrite it, or -o another file")
    except OSError as exc:
        fail(f"{output}: cannot write: {exc.strerror}")
    flag = "" if output == DEFAULT_CONFIG else f" -c {output}"
    print(f"wrote {output} (preset {preset}); set the ${{...}} variables it names, then:")
    print(f"  checker validate{flag}\n  checker check{flag}\n  checker run{flag}")


@app.command()
def validate(
    config: ConfigOpt = DEFAULT_CONFIG,
    lint: Annotated[
        bool,
        typer.Option("--lint", help="Check everything but that secrets resolve (for CI)."),
    ] = False,
) -> None:
    """Check a config file; exit 0 with a summary, or 2 with one line per problem."""
    from checker.cli.validate import (
        channel_problems,
        config_warnings,
        probe_costs,
        raw_channel_problems,
    )
    from checker.config.load import ConfigError, load

    try:
        cfg = load(config, "none" if lint else "all")
    except ConfigError as exc:  # every problem in one pass: the channel URLs too
        fail([*exc.problems, *raw_channel_problems(config)])
    # Without the secrets, only the URLs written out can be parsed.
    if problems := raw_channel_problems(config) if lint else channel_problems(config, cfg):
        fail(problems)
    for w in config_warnings(config, cfg):
        print(f"warning: {w}", file=sys.stderr)
    probes = sum(len(t.probe_names) for t in cfg.targets)
    print(
        f"{config}: valid: {len(cfg.targets)} targets, {probes} probes, "
        f"{len(cfg.notify)} notification channels"
    )
    for line in probe_costs(cfg):
        print(line)


def select(cfg: Config, names: list[str] | None, probe: str | None) -> list[tuple[Target, str]]:
    targets = cfg.targets
    if names:
        known = {t.name for t in cfg.targets}
        unknown = [n for n in names if n not in known]
        if unknown:
            fail(f"unknown target(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        targets = [t for t in cfg.targets if t.name in names]
    chosen = [(t, p) for t in targets for p in t.probe_names if probe is None or p == probe]
    if not chosen:
        fail(f"no target runs probe {probe!r}" if probe else "nothing to run")
    return chosen


@app.command()
def check(
    config: ConfigOpt = DEFAULT_CONFIG,
    targets: Annotated[
        list[str] | None, typer.Argument(help="Target names (default: all).")
    ] = None,
    probe: Annotated[str | None, typer.Option(help="Run only this probe.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One ProbeResult JSON per line.")] = False,
) -> None:
    """Run each selected probe once now, concurrently; exit 1 when any failed."""
    import asyncio

    from checker.cli.table import render as render_table

    cfg = load_config(config)
    selection = select(cfg, targets, probe)

    from checker.cost.prices import PriceBook
    from checker.cost.tokens import count_output_tokens
    from checker.probes.runner import run_all
    from checker.probes.transport.pool import ClientPool
    from checker.redact import Redactor

    async def go() -> list:
        async with ClientPool(cfg) as pool:
            return await run_all(cfg, selection, pool, Redactor(cfg.secrets()))

    results = asyncio.run(go())
    book = PriceBook(cfg)
    for r in results:
        target = cfg.target(r.target)
        if r.cost_usd is None and r.prompt_tokens is not None:
            r.cost_usd = book.cost_of_result(target, r)
        count_output_tokens(r, target)
    if as_json:
        for r in results:
            print(json.dumps(r.to_json()))
    else:
        from checker.cli.check_table import CHECK_COLUMNS, check_rows
        from checker.cli.width import output_width

        table = render_table(CHECK_COLUMNS, check_rows(results), output_width())
        stdout.print(table, soft_wrap=True)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


LogLevel = Annotated[
    str,
    typer.Option("--log-level", envvar="CHECKER_LOG_LEVEL", help="debug, info, warning, error."),
]
LogFormat = Annotated[
    str, typer.Option("--log-format", envvar="CHECKER_LOG_FORMAT", help="text or json.")
]


def _setup_logs(cfg: Config | None, level: str, fmt: str, location: str | None = None) -> None:
    from checker import logs
    from checker.redact import Redactor

    if level.lower() not in ("debug", "info", "warning", "error"):
        fail(f"--log-level: expected debug, info, warning or error (got {level!r})")
    if fmt not in ("text", "json"):
        fail(f"--log-format: expected text or json (got {fmt!r})")
    logs.setup(level, fmt, Redactor(cfg.secrets() if cfg else []), location)


@app.command()
def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
    location: Annotated[
        str | None,
        typer.Option(help="This node's location label (overrides the config's `location`)."),
    ] = None,
) -> None:
    """Run the service: scheduled probes, storage, alerts (until SIGTERM/Ctrl-C)."""
    import asyncio

    from checker.config.schema import NAME_PATTERN
    from checker.service.wiring import Service
    from checker.store.startup import StorageUnavailable

    cfg = load_config(config)
    if location is not None and not re.fullmatch(NAME_PATTERN, location):
        fail(f"--location: expected lowercase letters, digits and '-' (got {location!r})")
    where = location or cfg.location
    _setup_logs(cfg, log_level, log_format, where)
    try:
        code = asyncio.run(Service(config, cfg, location=location).run())
    except StorageUnavailable as exc:
        fail(str(exc))
    raise typer.Exit(code)


def _seen(row: Any) -> bool:
    """A location row worth a line: it has results in the window, or a last result."""
    return bool(row.results or row.last is not None)


@app.command()
def status(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
    window: Annotated[str, typer.Option(help="Window for counts and percentiles.")] = "24h",
    by_location: Annotated[
        bool, typer.Option("--by-location", help="Each location's figures under the route's.")
    ] = False,
) -> None:
    """Per target: uptime over 1h/24h/7d/30d, latency and TTFT percentiles, errors, last result."""
    from datetime import UTC, datetime, timedelta

    from checker.cli.status_table import status_columns, status_rows
    from checker.cli.table import render as render_table
    from checker.store import db
    from checker.store.fleet import locations_seen
    from checker.store.queries.status import status as query_status
    from checker.units import parse_window

    cfg = load_config(config, secrets="storage")
    try:
        window_s = parse_window(window, cfg.storage.rollup_retention)
    except ValueError as exc:
        fail(f"--window: {exc} (got {window!r})")
    url = cfg.storage.resolved_url()
    engine = db.make_engine(url)
    now = datetime.now(UTC)

    def figures(location: str | None = None) -> list[Any]:
        return query_status(
            engine,
            [t.name for t in cfg.targets],
            now,
            main_window=window,
            count_rate_limited={t.name: cfg.slo(t).count_rate_limited for t in cfg.targets},
            layout=cfg.probe_layout(),
            location=location,
        )

    try:
        rows = figures()
        if by_location:
            since = now - timedelta(seconds=max(window_s, 30 * 86400))
            at = {loc: figures(loc) for loc in locations_seen(engine, since)}
            # Each target's row for the whole route, then one per location it was seen at.
            rows = [
                r
                for i, whole in enumerate(rows)
                for r in (whole, *(at[loc][i] for loc in at if _seen(at[loc][i])))
            ]
    except Exception as exc:
        fail(
            f"{cfg.storage.resolved_url().split('://')[0]} database: {type(exc).__name__}: "
            "is the schema created? run `checker db upgrade -c FILE`"
        )
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps([r.to_json() for r in rows], indent=None))
        return
    from checker.cli.status_table import status_notes
    from checker.cli.width import output_width

    docs = [r.to_json() for r in rows]
    width = output_width()
    table = render_table(status_columns(window), status_rows(docs), width)
    stdout.print(table, soft_wrap=True)
    for note in status_notes(window, width):
        print(note)


@app.command()
def digest(
    config: ConfigOpt = DEFAULT_CONFIG,
    preview: Annotated[
        Path | None, typer.Option(help="Write the digest here (.html, .txt or .md).")
    ] = None,
    send: Annotated[bool, typer.Option("--send", help="Send it now to digest channels.")] = False,
    date: Annotated[
        str | None, typer.Option(help="A local calendar day YYYY-MM-DD (default: last 24h).")
    ] = None,
) -> None:
    """Build the daily digest: preview it to a file, or send it now."""
    from checker.cli.digest import digest_command

    if preview is None and not send:
        fail("digest: give --preview FILE or --send")
    raise typer.Exit(digest_command(config, preview, send, date))


@app.command()
def compare(
    config: ConfigOpt = DEFAULT_CONFIG,
    window: Annotated[str, typer.Option(help="Window, e.g. 1h, 24h, 7d, 90d.")] = "24h",
    probe: Annotated[str, typer.Option(help="The probe to compare.")] = "stream",
    model: Annotated[
        str | None, typer.Option(help="Only this group (a model, or a target's `group:`).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable document.")] = False,
) -> None:
    """Routes to the same model side by side: availability, TTFT, added TTFT, real price."""
    from checker.cli.compare import compare_command

    raise typer.Exit(compare_command(config, window, probe, model, as_json))


@app.command()
def baseline(
    target: Annotated[str, typer.Argument(help="The target (route) to show or accept.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    accept: Annotated[
        bool, typer.Option("--accept", help="Make what it serves now its baseline.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable document.")] = False,
) -> None:
    """A route's accepted fingerprint, model and identity signature against what it serves."""
    from checker.cli.baseline import baseline_command

    raise typer.Exit(baseline_command(config, target, accept, as_json))


@app.command()
def nodes(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
) -> None:
    """The nodes of the fleet: location, version, leader, last heartbeat."""
    from checker.cli.nodes import nodes_command

    raise typer.Exit(nodes_command(config, as_json))


@app.command()
def export(
    config: ConfigOpt = DEFAULT_CONFIG,
    since: Annotated[
        str | None, typer.Option(help="From this time: ISO date/datetime (UTC) or 24h, 7d ago.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (same forms).")] = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", help="Only this target (repeatable).")
    ] = None,
    probe: Annotated[str | None, typer.Option(help="Only this probe.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv (with a header row) or jsonl.")] = "csv",
    rollups: Annotated[
        bool,
        typer.Option(
            "--rollups",
            help="Export hourly rollup rows (counts, cost/token sums, errors; no sketches).",
        ),
    ] = False,
) -> None:
    """Stream stored results to stdout, oldest first: every result field plus location and
    maintenance (or, with --rollups, one row per hourly rollup). The config must load, so
    env vars it references must be set; no secret is written."""
    from checker.cli.export import export_command

    raise typer.Exit(export_command(config, since, until, target or [], probe, fmt, rollups))


@app.command("notify-test")
def notify_test(
    config: ConfigOpt = DEFAULT_CONFIG,
    tag: Annotated[str | None, typer.Option(help="Only channels with this tag.")] = None,
) -> None:
    """Send a test notification to each channel; report delivered or the error per channel."""
    import asyncio

    from checker.alerting.channels import load_channels
    from checker.alerting.deliver import send
    from checker.redact import Redactor

    cfg = load_config(config)
    try:
        channels = load_channels(cfg)
    except ValueError as exc:
        fail(str(exc))
    if tag is not None:
        channels = [c for c in channels if tag in c.tags]
    if not channels:
        fail("no notification channel matches" if tag else "no notification channels configured")
    redactor = Redactor(cfg.secrets())

    async def go() -> list[str | None]:
        return await asyncio.gather(
            *(
                send(
                    ch,
                    "checker test notification",
                    f"This is a test from checker at location {cfg.location}.",
                    "text",
                    "info",
                )
                for ch in channels
            )
        )

    errors = asyncio.run(go())
    for ch, error in zip(channels, errors, strict=True):
        tags = ",".join(sorted(ch.tags)) or "-"
        verdict = "delivered" if error is None else f"FAILED: {redactor.text(error)}"
        print(f"{ch.label} [{tags}]: {verdict}")
    raise typer.Exit(0 if all(e is None for e in errors) else 1)


@app.command()
def incidents(
    config: ConfigOpt = DEFAULT_CONFIG,
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list.")] = False,
) -> None:
    """List incidents, newest first (or the open ones, oldest first)."""
    from checker.cli.table import render as render_table
    from checker.redact import Redactor
    from checker.store import db
    from checker.web.status_data import incidents as query_incidents

    cfg = load_config(config, secrets="storage")
    engine = db.make_engine(cfg.storage.resolved_url())
    try:
        rows = query_incidents(engine, Redactor(cfg.secrets()), open_only=open_only)
    except Exception as exc:  # one clear line instead of a traceback
        fail(f"database: {type(exc).__name__}: run `checker db upgrade -c FILE` first?")
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps([r.to_json() for r in rows]))
        return
    from datetime import UTC, datetime

    from checker.cli.incidents_table import INCIDENT_COLUMNS, SloTerms, incident_rows
    from checker.cli.width import output_width

    slos = {t.name: SloTerms(cfg.slo(t).availability, cfg.slo(t).window) for t in cfg.targets}
    table = incident_rows([r.to_json() for r in rows], slos, datetime.now(UTC))
    stdout.print(render_table(INCIDENT_COLUMNS, table, output_width()), soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Create or migrate the database schema to the latest revision."""
    from checker.store import migrate

    cfg = load_config(config, secrets="storage")
    migrate.upgrade(cfg.storage.resolved_url())
    print("database schema is up to date")


@db_app.command("check")
def db_check(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Exit 1 when the database schema differs from the models."""
    from checker.store import migrate

    cfg = load_config(config, secrets="storage")
    diffs = migrate.check(cfg.storage.resolved_url())
    for d in diffs:
        print(f"difference: {d}")
    raise typer.Exit(1 if diffs else 0)


@app.command()
def sim(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 8900,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    api_key: Annotated[str | None, typer.Option(help="Require this bearer key.")] = None,
    behavior: Annotated[
        str | None, typer.Option(help="JSON object of Behavior fields for the default route.")
    ] = None,
) -> None:
    """Serve the simulated OpenAI/Anthropic-compatible endpoint (for demos and tests)."""
    from checker.sim import Behavior, run_forever

    behaviors = {}
    if behavior:
        try:
            behaviors["default"] = Behavior.from_dict(json.loads(behavior))
        except (ValueError, TypeError) as exc:
            fail(f"--behavior: expected a JSON object of Behavior fields ({exc})")
    run_forever(host, port, api_key, behaviors)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
