"""Logging setup: one line per event, text or JSON, every secret redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from checker.redact import Redactor

_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Redacts the final message, so no call site can leak a secret by formatting one in."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # Tracebacks can quote request URLs and headers: keep only the type and a redacted line.
            exc = record.exc_info[1]
            message += f" ({type(exc).__name__}: {exc})"
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redactor.text(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STD_ATTRS and isinstance(value, str):
                record.__dict__[key] = self.redactor.text(value)
        return True


class LocationFilter(logging.Filter):
    """Stamps every record with the node's location: lines from a fleet say where."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location

    def filter(self, record: logging.LogRecord) -> bool:
        record.location = self.location
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, location: bool = False) -> None:
        where = "[%(location)s] " if location else ""
        super().__init__(f"%(asctime)s %(levelname)-7s {where}%(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return stamp[:-3] + "Z"  # milliseconds


def setup(
    level: str = "info",
    fmt: str = "text",
    redactor: Redactor | None = None,
    location: str | None = None,
) -> None:
    """Log to stdout; `location` (the service's) goes on every line."""
    handler = logging.StreamHandler(sys.stdout)
    text = TextFormatter(location=location is not None)
    handler.setFormatter(JsonFormatter() if fmt == "json" else text)
    if location is not None:
        handler.addFilter(LocationFilter(location))
    handler.addFilter(RedactingFilter(redactor or Redactor()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log per request at INFO; that is per-probe noise for an operator.
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def set_redactor(redactor: Redactor) -> None:
    """Swap the redactor after a config reload (new secrets)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                f.redactor = redactor
