"""Exhaustive tests of the pure classification: statuses, error bodies, Retry-After, exceptions."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpcore
import httpx
import pytest

from checker.probes.base import ErrorKind
from checker.probes.classify import (
    DETAIL_LIMIT,
    ProbeFailure,
    classify_exception,
    classify_status,
    error_message,
    excerpt,
    is_quota,
    kind_for_status,
    parse_retry_after,
    scrub,
    short_detail,
    shorten,
)
from checker.redact import Redactor

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def openai_error(message: str, etype: str | None = None, code: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": etype, "code": code}})


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, openai_error("Incorrect API key provided", "invalid_request_error"), "auth"),
        (403, openai_error("Forbidden"), "auth"),
        (404, openai_error("The model `x` does not exist", code="model_not_found"), "not_found"),
        (402, json.dumps({"error": {"message": "Insufficient Balance"}}), "quota"),
        (402, "", "quota"),
        (
            429,
            openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
            "rate_limited",
        ),
        (429, openai_error("You exceeded your quota", "insufficient_quota"), "quota"),
        (429, openai_error("x", code="insufficient_quota"), "quota"),
        (429, openai_error("You exceeded your current quota, please check your plan"), "quota"),
        (
            400,
            json.dumps(
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Your credit balance is too low to access the Anthropic API.",
                    },
                }
            ),
            "quota",
        ),
        (403, openai_error("Insufficient credits"), "quota"),
        (400, openai_error("max_tokens is too large"), "client_error"),
        (413, "Request Entity Too Large", "client_error"),
        (422, json.dumps({"detail": [{"msg": "field required"}]}), "client_error"),
        (408, "", "client_error"),
        (301, "", "client_error"),
        (500, openai_error("The server had an error"), "server_error"),
        (502, "<html>Bad Gateway</html>", "server_error"),
        (503, "", "server_error"),
        (529, json.dumps({"type": "error", "error": {"type": "overloaded_error"}}), "server_error"),
    ],
)
def test_status_table(status: int, body: str, kind: str) -> None:
    verdict = classify_status(status, body, {}, now=NOW)
    assert verdict is not None
    assert verdict.kind == ErrorKind(kind)
    assert verdict.detail.startswith(f"HTTP {status}")


@pytest.mark.parametrize("status", [200, 201, 204, 100])
def test_success_statuses_are_not_failures(status: int) -> None:
    assert kind_for_status(status) is None
    assert classify_status(status, "", {}, now=NOW) is None


def test_detail_carries_provider_message_and_code() -> None:
    body = openai_error("Rate limit reached for gpt-4o", "requests", "rate_limit_exceeded")
    verdict = classify_status(429, body, {}, now=NOW)
    assert verdict is not None
    assert verdict.detail == "HTTP 429 rate_limit_exceeded: Rate limit reached for gpt-4o"


def test_detail_of_plain_text_body_is_the_body_on_one_line() -> None:
    verdict = classify_status(502, "<html>\n  Bad   Gateway\n</html>", {}, now=NOW)
    assert verdict is not None
    assert verdict.detail == "HTTP 502: <html> Bad Gateway </html>"


def test_detail_of_empty_body_is_the_status() -> None:
    verdict = classify_status(503, "", {}, now=NOW)
    assert verdict is not None
    assert verdict.detail == "HTTP 503"


def test_redirect_detail_names_the_target() -> None:
    verdict = classify_status(302, "", {"location": "https://login.example.com/"}, now=NOW)
    assert verdict is not None
    assert verdict.detail == "HTTP 302: unexpected redirect to https://login.example.com/"


def test_detail_is_truncated() -> None:
    verdict = classify_status(500, openai_error("x" * 1000), {}, now=NOW)
    assert verdict is not None
    assert len(verdict.detail) == DETAIL_LIMIT
    assert verdict.detail.endswith("…")


def test_error_message_shapes() -> None:
    assert error_message(openai_error("m", "t", "c")) == ("m", "t", "c")
    assert error_message(json.dumps({"error": "plain string"})) == ("plain string", None, None)
    assert error_message(json.dumps({"message": "top level"})) == ("top level", None, None)
    assert error_message(json.dumps({"detail": "fastapi"})) == ("fastapi", None, None)
    assert error_message("not json") == ("not json", None, None)
    assert error_message("[1, 2]") == ("[1, 2]", None, None)
    anthropic = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "O"}})
    assert error_message(anthropic) == ("O", "overloaded_error", None)


@pytest.mark.parametrize(
    "text",
    [
        "You exceeded your current quota",
        "Insufficient Balance",
        "insufficient account balance",
        "Your credit balance is too low",
        "billing hard limit reached",
        "Payment Required",
    ],
)
def test_quota_wording(text: str) -> None:
    assert is_quota(text)


def test_plain_rate_limit_is_not_quota() -> None:
    assert not is_quota("Rate limit reached for requests per minute")
    assert is_quota("", code="insufficient_quota")
    assert is_quota("", etype="insufficient_quota")


# --- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),  # ms is more precise: preferred
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=90), usegmt=True)}, 90.0),
        ({"retry-after": format_datetime(NOW - timedelta(seconds=90), usegmt=True)}, 0.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_retry_after_flows_into_verdict() -> None:
    verdict = classify_status(429, "", httpx.Headers({"Retry-After": "12"}), now=NOW)
    assert verdict is not None
    assert verdict.retry_after_s == 12.0


# --- secrets --------------------------------------------------------------------------------


def test_secret_is_redacted_before_truncation() -> None:
    secret = "sk-live-" + "a" * 40
    # The secret straddles the truncation point: redacting afterwards would leak its head.
    message = "x" * (DETAIL_LIMIT - 20) + f" Incorrect API key provided: {secret}"
    verdict = classify_status(
        401, openai_error(message), {}, redact=Redactor([secret]).text, now=NOW
    )
    assert verdict is not None
    assert "sk-live" not in verdict.detail
    assert "aaaa" not in verdict.detail


def test_token_like_strings_are_scrubbed_even_when_unknown() -> None:
    text = "got Authorization: Bearer abc.def-123 and key sk-proj-ABCDEFGHIJKLMNOP"
    out = scrub(text)
    assert "abc.def-123" not in out
    assert "ABCDEFGHIJKLMNOP" not in out
    assert "Bearer ***" in out


def test_shorten_and_short_detail() -> None:
    assert shorten("a\n\tb  c") == "a b c"
    assert len(shorten("y" * 500, 50)) == 50
    assert short_detail("key=supersecret", Redactor(["supersecret"]).text) == "key=***"


# --- exceptions -----------------------------------------------------------------------------


def wrapped(outer: type[httpx.HTTPError], root: BaseException, message: str = "") -> Exception:
    """An httpx exception chained like httpx raises it: httpx <- httpcore <- OSError."""
    inner = httpcore.ConnectError(str(root))
    inner.__cause__ = root
    exc = outer(message or str(root))
    exc.__cause__ = inner
    return exc


@pytest.mark.parametrize(
    ("exc", "headers_received", "kind"),
    [
        (httpx.ConnectTimeout(""), False, "connect_timeout"),
        (
            wrapped(httpx.ConnectError, socket.gaierror(-2, "Name or service not known")),
            False,
            "dns",
        ),
        (httpx.ConnectError("Temporary failure in name resolution"), False, "dns"),
        (
            wrapped(httpx.ConnectError, ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong")),
            False,
            "tls",
        ),
        (
            httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
            False,
            "tls",
        ),
        (
            wrapped(
                httpx.ConnectError,
                ConnectionRefusedError(111, "Connect call failed"),
                "All connection attempts failed",
            ),
            False,
            "connect",
        ),
        (httpx.ReadTimeout(""), False, "timeout"),
        (httpx.ReadTimeout(""), True, "stall"),
        (httpx.WriteTimeout(""), False, "timeout"),
        (httpx.PoolTimeout(""), False, "timeout"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            False,
            "disconnect",
        ),
        (
            httpx.RemoteProtocolError("illegal status line: bytearray(b'HTTX')"),
            False,
            "bad_response",
        ),
        (
            httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ),
            True,
            "disconnect",
        ),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), True, "disconnect"),
        (httpx.ReadError(""), False, "disconnect"),
        (httpx.WriteError("broken pipe"), False, "disconnect"),
        (httpx.DecodingError("bad gzip"), True, "bad_response"),
        (httpx.UnsupportedProtocol("ftp"), False, "client_error"),
        (json.JSONDecodeError("Expecting value", "x", 0), True, "bad_response"),
        (ProbeFailure(ErrorKind.too_large, "response body over 1024 bytes"), True, "too_large"),
        (ConnectionResetError(104, "reset"), True, "disconnect"),
        (ConnectionRefusedError(111, "refused"), False, "connect"),
    ],
)
def test_exception_table(exc: BaseException, headers_received: bool, kind: str) -> None:
    verdict = classify_exception(exc, headers_received=headers_received)
    assert verdict.kind == ErrorKind(kind)
    assert verdict.detail


def test_connect_detail_names_the_root_cause() -> None:
    exc = wrapped(
        httpx.ConnectError,
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"),
        "All connection attempts failed",
    )
    verdict = classify_exception(exc, headers_received=False)
    assert verdict.detail.startswith("connection failed: ")
    assert verdict.detail == "connection failed: Connection refused"


def test_cancelled_scope_is_not_the_detail() -> None:
    inner = TimeoutError()
    inner.__context__ = asyncio.CancelledError("Cancelled via cancel scope")
    exc = httpx.ConnectTimeout("")
    exc.__cause__ = inner
    assert classify_exception(exc, headers_received=False).detail == "connect timed out"


def test_read_timeout_detail_names_the_wait() -> None:
    verdict = classify_exception(httpx.ReadTimeout(""), headers_received=True, read_timeout_s=0.5)
    assert verdict.detail == "no bytes after 0.5s mid-body (read timeout)"


def test_unknown_exception_hides_its_message() -> None:
    verdict = classify_exception(RuntimeError("token sk-secret-value"), headers_received=False)
    assert verdict.detail == "internal error: RuntimeError"
    assert "secret" not in verdict.detail


def test_exception_detail_is_redacted() -> None:
    exc = httpx.ReadError("reset while sending key hunter2hunter2")
    verdict = classify_exception(
        exc, headers_received=True, redact=Redactor(["hunter2hunter2"]).text
    )
    assert "hunter2" not in verdict.detail


def test_excerpt_redacts_before_cutting() -> None:
    secret = "sk-live-" + "b" * 40
    text = "x" * 50 + secret  # the cut at 60 would leave a stub the redactor can't know
    out = excerpt(text, Redactor([secret]).text)
    assert "bbbb" not in out and "sk-live" not in out
    assert len(out) <= 60
