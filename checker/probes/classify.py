"""Outcome classification: HTTP statuses, error bodies and transport exceptions -> ErrorKind.

Pure: no I/O, and no clock of its own (the time a Retry-After date is counted from is an
argument). Probes call these once they know what happened; every outcome maps to
exactly one ErrorKind so alerts, metrics and digests can group by it.

Decisions worth knowing:
- 413 is `client_error`, not `too_large`: it means the server refused our (tiny) request,
  while `too_large` means the *response* broke our own limits (max_body_bytes,
  max_stream_events). Mixing the two would hide which side misbehaved.
- Quota exhaustion is recognised on 400/403/429 too, by code/type `insufficient_quota` or
  common billing wording, because providers disagree on the status (OpenAI 429, DeepSeek
  402, Anthropic 400 "credit balance is too low").
- A 3xx reaching a probe is `client_error`: probes never follow redirects, and an API base
  URL that redirects is a configuration problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from checker.probes.base import ErrorKind

DETAIL_LIMIT = 200

_QUOTA_WORDING = re.compile(
    r"insufficient[_ ]quota|exceeded your current quota|insufficient (?:account )?balance"
    r"|credit balance is too low|insufficient credits|out of credits|billing (?:hard )?limit"
    r"|payment required|quota (?:has been )?exhausted",
    re.IGNORECASE,
)
# Tokens a provider may echo back even when they are not ours (so the Redactor can't know).
_TOKEN_LIKE = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+|\b(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}")
_WHITESPACE = re.compile(r"\s+")
_DNS_WORDING = re.compile(
    r"name or service not known|temporary failure in name resolution|nodename nor servname"
    r"|no address associated with hostname|name resolution|getaddrinfo failed",
    re.IGNORECASE,
)
_TLS_WORDING = re.compile(r"\bssl\b|\btls\b|certificate|handshake", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One classified failure: what kind, a short secret-free reason, and when to retry."""

    kind: ErrorKind
    detail: str
    retry_after_s: float | None = None


class ProbeFailure(Exception):
    """Raised deep inside a probe (body limits, unreadable chunks) to end it with a known
    verdict. Its detail is composed by us, never copied from the endpoint unredacted."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.verdict = Verdict(kind, detail)


def scrub(text: str, redact: Callable[[str], str] | None = None) -> str:
    """Redact known secrets and token-like strings; done before truncation so a secret cut
    in half at the limit can never slip past the redactor."""
    if redact is not None:
        text = redact(text)
    return _TOKEN_LIKE.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)


def shorten(text: str, limit: int = DETAIL_LIMIT) -> str:
    """One line of at most `limit` characters."""
    text = _WHITESPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_detail(text: str, redact: Callable[[str], str] | None = None) -> str:
    return shorten(scrub(text, redact))


def excerpt(text: str, redact: Callable[[str], str] | None, limit: int = 60) -> str:
    """The start of untrusted text for a detail line, redacted *before* it is cut."""
    return shorten(scrub(text[: limit + 4096], redact)[:limit], limit)


# --- error bodies ---------------------------------------------------------------------------


def error_fields(doc: Any) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from the error shapes providers use."""
    if not isinstance(doc, dict):
        return None, None, None
    err = doc.get("error", doc)
    if isinstance(err, str):
        return err, None, None
    if not isinstance(err, dict):
        return None, None, None
    message = err.get("message") or err.get("detail") or err.get("msg")
    if isinstance(message, list | dict):
        message = json.dumps(message)
    etype, code = err.get("type"), err.get("code")
    return (
        str(message) if message is not None else None,
        str(etype) if etype is not None else None,
        str(code) if code is not None else None,
    )


def error_message(body: str) -> tuple[str, str | None, str | None]:
    """(provider's message or the raw body, error type, error code) from an error body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body, None, None
    message, etype, code = error_fields(doc)
    return (message if message else body), etype, code


def is_quota(text: str, etype: str | None = None, code: str | None = None) -> bool:
    return "insufficient_quota" in (etype, code) or bool(_QUOTA_WORDING.search(text))


# --- Retry-After ----------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `retry-after-ms` (preferred, more precise) or `Retry-After`
    (seconds or an HTTP date, counted from `now`). None when absent or unreadable; never
    negative."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms.strip()) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- statuses -------------------------------------------------------------------------------


def kind_for_status(
    status: int, message: str = "", etype: str | None = None, code: str | None = None
) -> ErrorKind | None:
    """ErrorKind for an HTTP status (None for 2xx/1xx, i.e. not a failure by status)."""
    if status < 300:
        return None
    if status < 400:
        return ErrorKind.client_error
    if status == 402:
        return ErrorKind.quota
    if status in (400, 403, 429) and is_quota(message, etype, code):
        return ErrorKind.quota
    if status in (401, 403):
        return ErrorKind.auth
    if status == 404:
        return ErrorKind.not_found
    if status == 429:
        return ErrorKind.rate_limited
    if status < 500:
        return ErrorKind.client_error
    return ErrorKind.server_error


def classify_status(
    status: int,
    body: str,
    headers: Mapping[str, str],
    redact: Callable[[str], str] | None = None,
    *,
    now: datetime,
) -> Verdict | None:
    """Verdict for a non-2xx response from its status, error body and headers."""
    message, etype, code = error_message(body)
    kind = kind_for_status(status, message, etype, code)
    if kind is None:
        return None
    if 300 <= status < 400:
        where = headers.get("location") or headers.get("Location") or "?"
        message = f"unexpected redirect to {where}"
    label = f"HTTP {status}"
    if etype or code:
        label += f" {code or etype}"
    text = f"{label}: {message}" if message.strip() else label
    return Verdict(kind, short_detail(text, redact), parse_retry_after(headers, now))


# --- exceptions -----------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (httpx wraps httpcore wraps OSError)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _root_message(exc: BaseException) -> str:
    """The most specific non-empty message in the chain ("Connection refused", not
    httpx's "All connection attempts failed")."""
    for e in reversed(_chain(exc)):
        if isinstance(e, asyncio.CancelledError):
            continue
        if isinstance(e, OSError) and not isinstance(e, ssl.SSLError) and e.strerror:
            # "Connection refused", not "[Errno 111] Connect call failed ('1.2.3.4', 443)"
            errno = e.errno if isinstance(e.errno, int) else 0
            return os.strerror(errno) if errno > 0 else e.strerror
        if text := str(e).strip():
            return text
    return type(exc).__name__


def _connect_kind(exc: BaseException) -> ErrorKind:
    chain = _chain(exc)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return ErrorKind.dns
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain):
        return ErrorKind.tls
    text = " ".join(str(e) for e in chain)
    if _DNS_WORDING.search(text):
        return ErrorKind.dns
    if _TLS_WORDING.search(text):
        return ErrorKind.tls
    return ErrorKind.connect


_CONNECT_LABEL = {
    ErrorKind.dns: "DNS lookup failed",
    ErrorKind.tls: "TLS handshake failed",
    ErrorKind.connect: "connection failed",
}


def classify_exception(
    exc: BaseException,
    *,
    headers_received: bool,
    read_timeout_s: float | None = None,
    redact: Callable[[str], str] | None = None,
) -> Verdict:
    """Verdict for a transport exception; `headers_received` tells a failure while waiting
    for the answer (timeout) from one mid-body (stall, disconnect)."""
    root = _root_message(exc)
    waited = f" after {read_timeout_s:g}s" if read_timeout_s is not None else ""

    def verdict(kind: ErrorKind, text: str) -> Verdict:
        return Verdict(kind, short_detail(text, redact))

    if isinstance(exc, ProbeFailure):
        return Verdict(exc.verdict.kind, short_detail(exc.verdict.detail, redact))
    if isinstance(exc, httpx.ConnectTimeout):
        return verdict(ErrorKind.connect_timeout, "connect timed out")
    if isinstance(exc, httpx.ReadTimeout):
        if headers_received:
            return verdict(ErrorKind.stall, f"no bytes{waited} mid-body (read timeout)")
        return verdict(ErrorKind.timeout, f"no response headers{waited} (read timeout)")
    if isinstance(exc, httpx.TimeoutException):  # write / pool timeouts
        return verdict(ErrorKind.timeout, f"{type(exc).__name__}")
    if isinstance(exc, httpx.ConnectError):
        kind = _connect_kind(exc)
        return verdict(kind, f"{_CONNECT_LABEL[kind]}: {root}")
    if isinstance(exc, httpx.DecodingError):
        return verdict(ErrorKind.bad_response, f"undecodable body: {root}")
    if isinstance(exc, httpx.RemoteProtocolError):
        if headers_received or re.search(r"disconnect|closed|incomplete", root, re.I):
            return verdict(ErrorKind.disconnect, f"connection dropped: {root}")
        return verdict(ErrorKind.bad_response, f"invalid HTTP: {root}")
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return verdict(ErrorKind.disconnect, f"connection dropped: {root}")
    if isinstance(exc, httpx.ProxyError):
        return verdict(ErrorKind.connect, f"proxy failed: {root}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.TooManyRedirects):
        return verdict(ErrorKind.client_error, f"{type(exc).__name__}: {root}")
    if isinstance(exc, httpx.TransportError):
        return verdict(
            ErrorKind.connect if not headers_received else ErrorKind.disconnect,
            f"{type(exc).__name__}: {root}",
        )
    if isinstance(exc, ValueError | UnicodeDecodeError):
        # json.JSONDecodeError and friends: the endpoint sent something we cannot read.
        return verdict(ErrorKind.bad_response, f"unreadable body: {type(exc).__name__}")
    if isinstance(exc, ssl.SSLError):
        return verdict(
            ErrorKind.tls if not headers_received else ErrorKind.disconnect, f"TLS error: {root}"
        )
    if isinstance(exc, OSError):
        return verdict(
            ErrorKind.connect if not headers_received else ErrorKind.disconnect,
            f"{type(exc).__name__}: {root}",
        )
    # Unknown exceptions may carry anything in their message, secrets included.
    return Verdict(ErrorKind.bad_response, f"internal error: {type(exc).__name__}")


__all__ = [
    "DETAIL_LIMIT",
    "ProbeFailure",
    "Verdict",
    "classify_exception",
    "classify_status",
    "error_fields",
    "error_message",
    "excerpt",
    "is_quota",
    "kind_for_status",
    "parse_retry_after",
    "scrub",
    "short_detail",
    "shorten",
]
