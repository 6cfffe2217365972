"""What the probes send: fresh prompts that no cache can answer, and long prompts of a
known size for the prefill and cache probes. Pure (the nonce is passed in).

A fresh prompt ends with a short unique line, so two probes never send the same body and
neither a relay's response cache nor the provider's can answer from memory. Long prompts
are built from common English words that are one token each in OpenAI's o200k and cl100k
encodings (with their leading space), so N words are about N tokens; the route's reported
`prompt_tokens` is what the figures use, never this estimate.
"""

from __future__ import annotations

import random
import secrets

__all__ = ["VOCABULARY", "filler", "fresh", "long_prompt", "new_nonce"]

VOCABULARY: tuple[str, ...] = (
    "time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child",
    "world", "school", "state", "family", "student", "group", "country", "problem", "hand",
    "part", "place", "case", "week", "company", "system", "program", "question", "work",
    "government", "number", "night", "point", "home", "water", "room", "mother", "area",
    "money", "story", "fact", "month", "lot", "right", "study", "book", "eye", "job",
    "word", "business", "issue", "side", "kind", "head", "house", "service", "friend",
    "father", "power", "hour", "game", "line", "end", "member", "law", "car", "city",
    "name", "team", "minute", "idea", "kid", "body", "back", "parent", "face", "level",
    "office", "door", "health", "person", "art", "war", "history", "party", "result",
    "change", "morning", "reason", "research", "girl", "guy", "moment", "air", "teacher",
    "force", "education",
)  # fmt: skip


def new_nonce() -> str:
    return secrets.token_hex(4)


def fresh(prompt: str, nonce: str) -> str:
    """The prompt with a unique last line (the model is told to ignore it)."""
    return f"{prompt}\n(request {nonce}; ignore this line)"


def filler(words: int, seed: str) -> str:
    """`words` varied words, the same for the same seed (a cache needs the same prefix),
    in sentences of 12, so the text does not read as one repeated token to the model."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(words):
        word = rng.choice(VOCABULARY)
        out.append(word + ("." if i % 12 == 11 else ""))
    return " ".join(out)


def long_prompt(tokens: int, seed: str, last_line: str) -> str:
    """About `tokens` tokens of filler, then `last_line` (the instruction and any nonce)
    on its own line: the part before it is the prefix a prompt cache can reuse."""
    instruction_words = len(last_line.split())
    return f"{filler(max(1, tokens - instruction_words), seed)}\n{last_line}"
