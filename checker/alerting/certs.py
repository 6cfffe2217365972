"""TLS certificate expiry of https targets, for the `cert` rule.

The certificate is read without verifying it: an expired, self-signed or otherwise invalid
certificate must still tell its expiry (the probes report whether it verifies). Python's
`getpeercert()` returns nothing without verification, so the expiry comes from the DER
bytes; `notAfter` sits at a fixed place in every X.509 certificate, and reading it needs
a few lines of DER, not a crypto library.

Expiry dates are kept, not days: days left are computed when asked, so they stay exact
between the checks, which run every few hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

from checker.config.schema import Config, Target

log = logging.getLogger("checker.certs")

__all__ = [
    "CHECK_EVERY_S",
    "MAX_PARALLEL",
    "CertError",
    "CertWatch",
    "days_left",
    "fetch_not_after",
    "host_port",
    "not_after",
]

CHECK_EVERY_S = 6 * 3600.0
# Certificate checks of many targets at once: enough in parallel, never a burst of hundreds.
MAX_PARALLEL = 20

_SEQUENCE = 0x30
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_CONTEXT_0 = 0xA0


class CertError(ValueError):
    """The bytes are not a certificate this reader understands."""


# --- DER ----------------------------------------------------------------------------------------


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `at`."""
    if at + 2 > len(der):
        raise CertError("truncated certificate")
    tag, size = der[at], der[at + 1]
    at += 2
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or at + count > len(der):
            raise CertError("unsupported length encoding")
        size = int.from_bytes(der[at : at + count], "big")
        at += count
    if at + size > len(der):
        raise CertError("truncated certificate")
    return tag, at, at + size


def _children(der: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    at = start
    while at < end:
        tag, content, after = _element(der, at)
        yield tag, content, after
        at = after


def _time(tag: int, text: str) -> datetime:
    if not text.endswith("Z"):
        raise CertError(f"certificate time without Z: {text!r}")
    if tag == _UTC_TIME:
        # RFC 5280: two-digit years 50-99 are 19xx, 00-49 are 20xx.
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise CertError(f"unexpected time tag 0x{tag:02x}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def not_after(der: bytes) -> datetime:
    """The `notAfter` of a DER-encoded X.509 certificate (RFC 5280, section 4.1)."""
    tag, start, end = _element(der, 0)
    if tag != _SEQUENCE:
        raise CertError("not a certificate")
    tag, start, end = _element(der, start)  # tbsCertificate
    if tag != _SEQUENCE:
        raise CertError("not a certificate")
    fields = [(t, s, e) for t, s, e in _children(der, start, end) if t != _CONTEXT_0]
    # serialNumber, signature, issuer, validity: the version ([0]) is optional.
    if len(fields) < 4 or fields[3][0] != _SEQUENCE:
        raise CertError("certificate without a validity period")
    _tag, start, end = fields[3]
    times = list(_children(der, start, end))
    if len(times) != 2:
        raise CertError("certificate validity is not two times")
    tag, start, end = times[1]
    return _time(tag, der[start:end].decode("ascii"))


# --- reading a server's certificate -------------------------------------------------------------


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_CONTEXT = _unverified_context()


def host_port(base_url: str) -> tuple[str, int] | None:
    """Where an https target's certificate is served; None for plain http."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    return parts.hostname, parts.port or 443


async def fetch_not_after(host: str, port: int, within_s: float) -> datetime:
    """Connect, complete the TLS handshake, and read the server certificate's expiry."""
    async with asyncio.timeout(within_s):
        _reader, writer = await asyncio.open_connection(
            host, port, ssl=_CONTEXT, server_hostname=host
        )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise CertError("the server sent no certificate")
        return not_after(der)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


def days_left(expiry: datetime, now: datetime) -> float:
    return (expiry - now).total_seconds() / 86400.0


class CertWatch:
    """The latest known certificate expiry per https target, for the evaluator."""

    def __init__(self) -> None:
        self.expiry: dict[str, datetime] = {}
        self._where: dict[str, tuple[str, int]] = {}  # where each expiry was read

    def days_left(self, target: str, now: datetime | None = None) -> float | None:
        expiry = self.expiry.get(target)
        if expiry is None:
            return None
        return days_left(expiry, now or datetime.now(UTC))

    def _watched(self, cfg: Config) -> list[tuple[Target, str, int]]:
        out = []
        for t in cfg.targets:
            where = host_port(t.base_url)
            if where is not None and cfg.alerts(t).cert_days is not None:
                out.append((t, *where))
        return out

    async def refresh(self, cfg: Config) -> int:
        """Read every watched target's certificate; returns how many were read.

        A certificate that cannot be read keeps its last known expiry: whether the target
        is reachable is the probes' and the down rule's business, not this one's.
        """
        watched = self._watched(cfg)
        now_at = {t.name: (host, port) for t, host, port in watched}
        for name in list(self.expiry):
            # A removed target, or one that moved: its old certificate says nothing now.
            if self._where.get(name) != now_at.get(name):
                del self.expiry[name]
        limit = asyncio.Semaphore(MAX_PARALLEL)

        async def one(target: Target, host: str, port: int) -> bool:
            async with limit:
                try:
                    expiry = await fetch_not_after(host, port, cfg.connect_timeout(target))
                except (OSError, ssl.SSLError, TimeoutError, CertError) as exc:
                    log.info("%s: cannot read the TLS certificate: %s", target.name, _why(exc))
                    return False
            self.expiry[target.name] = expiry
            self._where[target.name] = (host, port)
            return True

        results = await asyncio.gather(*(one(t, h, p) for t, h, p in watched))
        return sum(results)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
