"""`checker digest`: build one digest, write it to a preview file and/or send it now.

The digest stage builds, renders and sends; printing, exit codes and the one-line errors
are the command line's, so they live here.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from checker.cli.config_file import load_or_report
from checker.digest.build import build_period
from checker.digest.period import last_hours, local_day, parse_day
from checker.digest.render import render_chat, render_html, render_text
from checker.digest.send import DELIVERED, digest_channels, public_status_url, send_now
from checker.redact import Redactor
from checker.store.db import make_engine

__all__ = ["digest_command"]


# What --preview writes, by the file's suffix.
_RENDERERS = {".html": render_html, ".txt": render_text, ".md": render_chat}


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def digest_command(
    config_path: Path | str, preview: Path | None, send: bool, date: str | None
) -> int:
    """`checker digest -c FILE --preview out.html [--date YYYY-MM-DD]` / `--send`.

    --preview writes HTML for a .html file, the plain-text part for .txt, the chat summary
    for .md (any other suffix is bad input); a period without any result reads "No data
    yet". Exit 0 on success, 1 when the database or a channel failed, 2 on bad
    input (one `error:` line each).
    """

    # A preview reads the store; sending needs the channels' secrets too.
    cfg = load_or_report(config_path, "all" if send else "storage")
    if cfg is None:
        return 2
    if preview is None and not send:
        _error("nothing to do: give --preview FILE or --send")
        return 2
    render = None
    if preview is not None:
        suffix = Path(preview).suffix.lower()
        render = _RENDERERS.get(suffix)
        if render is None:
            _error(f"--preview {preview}: unknown suffix {suffix!r}; expected .html, .txt or .md")
            return 2
    now = datetime.now(UTC)
    if date is not None:
        try:
            period = local_day(parse_day(date), cfg.digest.timezone)
        except ValueError as exc:
            _error(f"--date: {exc}")
            return 2
    else:
        period = last_hours(now, cfg.digest.timezone)
    if send and not digest_channels(cfg):
        _error(f"no notify channel is tagged {', '.join(cfg.digest.tags)} (see `notify:`)")
        return 2

    engine = make_engine(cfg.storage.resolved_url())
    try:
        ctx = build_period(engine, cfg, period, now=now)
        if preview is not None and render is not None:
            redact = Redactor(cfg.secrets())
            try:
                Path(preview).write_text(redact.text(render(ctx, public_status_url(cfg))), "utf-8")
            except OSError as exc:
                _error(f"--preview: cannot write {preview}: {exc.strerror or exc}")
                return 2
            print(f"wrote {preview}: {ctx.verdict}")
        if send:
            results = asyncio.run(send_now(engine, cfg, ctx))
            for label, outcome in results.items():
                print(f"{label}: {outcome}")
            if any(outcome != DELIVERED for outcome in results.values()):
                return 1
    except sa.exc.SQLAlchemyError as exc:
        _error(
            f"database: {type(exc).__name__}: is the schema created? "
            "run `checker db upgrade -c FILE`"
        )
        return 1
    finally:
        engine.dispose()
    return 0
