"""Token arithmetic of the honesty check (pure): estimates, ratios, the mismatch verdict.

What needs no tokenizer file lives here, so the digest (and anything else in the pure core)
can judge counts without importing `checker.cost.tokens`, which loads encodings. See that
module's docstring for how text is counted and how good each method is.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_TOKENS_FOR_RATIO",
    "TokenCount",
    "TokenMethod",
    "counted_usage_mismatch",
    "estimate_tokens",
    "estimate_tokens_from_chars",
    "ratio_of_counts",
    "usage_mismatch",
]

TokenMethod = Literal["tiktoken", "proxy", "estimate"]

CHARS_PER_TOKEN = 4.0
# Below this many tokens on both sides a ratio is noise (one stop token is 50% of two).
MIN_TOKENS_FOR_RATIO = 8


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    method: TokenMethod
    encoding: str | None  # tiktoken encoding used; None for an estimate


# Pieces as BPE pre-tokenizers cut them: a word with its leading space, digits in groups
# of up to three, a punctuation run with its leading space, a run of whitespace.
_PIECE = re.compile(r"[^\S\r\n]?[^\W\d_]+|\d{1,3}|[^\S\r\n]?[^\w\s]+|\s+")

# Characters per token inside one word, by script, fitted to o200k_base.
_LATIN_CHARS_PER_TOKEN = 7.0
_OTHER_ALPHABET_CHARS_PER_TOKEN = 6.0
_CJK_TOKENS_PER_CHAR = 0.75
_PUNCT_CHARS_PER_TOKEN = 2.0


def _is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def _word_tokens(word: str) -> float:
    letters = word.lstrip()
    cjk = sum(1 for ch in letters if ord(ch) >= 0x2E80 and _is_cjk(ch))
    latin = sum(1 for ch in letters if ord(ch) < 0x250)
    other = len(letters) - cjk - latin
    tokens = cjk * _CJK_TOKENS_PER_CHAR
    if latin:
        tokens += math.ceil(latin / _LATIN_CHARS_PER_TOKEN)
    if other:
        tokens += math.ceil(other / _OTHER_ALPHABET_CHARS_PER_TOKEN)
    return max(tokens, 1.0)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate of o200k_base's count (see the module docstring)."""
    total = 0.0
    for match in _PIECE.finditer(text):
        piece = match.group()
        head = piece.lstrip()
        if not head:
            total += 1  # a whitespace run: newlines, indentation
        elif head[0].isdigit():
            total += 1
        elif head[0].isalpha():
            total += _word_tokens(piece)
        else:
            total += math.ceil(len(head) / _PUNCT_CHARS_PER_TOKEN)
    return round(total)


def estimate_tokens_from_chars(chars: int) -> int:
    """chars / 4, for when only the length of the text was kept."""
    return math.ceil(max(chars, 0) / CHARS_PER_TOKEN)


def ratio_of_counts(
    reported_completion_tokens: int,
    counted: int,
    unstreamed_tokens: int = 0,
    min_tokens: int = MIN_TOKENS_FOR_RATIO,
) -> float | None:
    """Reported completion tokens (less `unstreamed_tokens`) / tokens counted in the text.

    None when both sides are under `min_tokens` (too small to judge).
    """
    reported = max(reported_completion_tokens - max(unstreamed_tokens, 0), 0)
    if max(reported, counted) < min_tokens:
        return None
    if counted == 0:
        return math.inf
    return reported / counted


def usage_mismatch(ratio: float | None, band: tuple[float, float]) -> bool:
    """True when a ratio falls outside [low, high]; an unknown ratio is no mismatch."""
    if ratio is None:
        return False
    low, high = band
    return not low <= ratio <= high


def counted_usage_mismatch(
    completion_tokens: int | None,
    reasoning_tokens: int | None,
    counted_tokens: int | None,
    band: tuple[float, float],
) -> bool | None:
    """Reported completion tokens against the tokens counted in the streamed text.

    Reasoning may or may not have been streamed (DeepSeek streams it, OpenAI o-series hides
    it), so a result is flagged only when neither reading fits the band. None: too small
    to judge, or nothing counted.
    """
    if completion_tokens is None or counted_tokens is None:
        return None
    readings = [ratio_of_counts(completion_tokens, counted_tokens)]
    if reasoning_tokens:
        readings.append(ratio_of_counts(completion_tokens, counted_tokens, reasoning_tokens))
    judged = [r for r in readings if r is not None]
    if not judged:
        return None
    return all(usage_mismatch(r, band) for r in judged)
