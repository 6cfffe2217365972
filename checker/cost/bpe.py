"""A tiktoken encoding held compactly: counts (and encodes) exactly as tiktoken does.

tiktoken's Rust core keeps its ranks twice (token -> rank and rank -> token, a heap
allocation per token): 40 MB resident for o200k_base, more than any library the service
imports. The checker only counts and, in tests, decodes. Here the tokens are one bytes
blob in rank order with an `array('I')` of offsets, and token -> rank is an open-addressing
table of `array('i')` slots keyed by the token's hash: about 5 MB for o200k_base, and three
objects for the garbage collector instead of 200,000.

The text is split by the encoding's own pattern (the `regex` module, which tiktoken itself
depends on, reads the same syntax as tiktoken's Rust regex for these patterns), and each
piece is merged as tiktoken's `byte_pair_merge` does: the adjacent pair of parts whose
concatenation has the lowest rank first, the leftmost of equal ones. A heap keyed by (rank,
position) makes the same choices in O(n log n) rather than O(n^2), so a long run of one
character cannot stall the event loop. Pure: it takes the ranks, reads no file.
"""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Iterable

import regex  # type: ignore[import-untyped]  # tiktoken's own dependency; no stubs

__all__ = ["CompactBpe"]


class CompactBpe:
    """One encoding: `count(text)` == len(tiktoken's `encode_ordinary(text)`)."""

    __slots__ = ("_blob", "_mask", "_offsets", "_pattern", "_table", "name")

    def __init__(
        self, name: str, pat_str: str, ranks: Iterable[tuple[bytes, int]], count: int
    ) -> None:
        """`ranks`: (token, rank) pairs in rank order, ranks 0..n-1 (as in every tiktoken
        file), n at most `count`. Each pair is read once and not kept, so the 200,000 small
        objects of a file never exist together (and leave no fragmented heap behind)."""
        self.name = name
        self._pattern = regex.compile(pat_str)
        size = 1 << max(count * 2, 1).bit_length()  # load factor <= 1/2
        self._mask = mask = size - 1
        self._table = table = array("i", bytes(4 * size))  # 0: empty, else rank + 1
        self._offsets = offsets = array("I", [0])
        blob = bytearray()
        for token, rank in ranks:
            if rank != len(offsets) - 1 or rank >= count:
                raise ValueError(f"{name}: rank {rank} out of order or past {count}")
            slot = hash(token) & mask
            while table[slot]:
                slot = (slot + 1) & mask
            table[slot] = rank + 1
            blob += token
            offsets.append(len(blob))
        self._blob = bytes(blob)

    @property
    def n_vocab(self) -> int:
        return len(self._offsets) - 1

    def rank(self, token: bytes) -> int:
        """The token's rank, or -1 when it is not one token."""
        table, blob, offsets, mask = self._table, self._blob, self._offsets, self._mask
        slot, length = hash(token) & mask, len(token)
        while entry := table[slot]:
            start = offsets[entry - 1]
            if offsets[entry] - start == length and blob[start : start + length] == token:
                return entry - 1
            slot = (slot + 1) & mask
        return -1

    def _merge(self, piece: bytes) -> list[int]:
        """Start offsets of the parts byte-pair merging leaves, then len(piece)."""
        n = len(piece)
        following = list(range(1, n + 1))  # following[i]: where the part starting at i ends
        preceding = list(range(-1, n - 1))
        alive = [True] * n
        heap = [(r, i, i + 2) for i in range(n - 1) if (r := self.rank(piece[i : i + 2])) >= 0]
        heapq.heapify(heap)
        while heap:
            _r, i, end = heapq.heappop(heap)
            j = following[i] if alive[i] else n
            if j >= n or following[j] != end:
                continue  # a neighbour merged since: this pair no longer exists
            alive[j] = False
            following[i] = end
            if end < n:
                preceding[end] = i
            if (p := preceding[i]) >= 0 and (r := self.rank(piece[p:end])) >= 0:
                heapq.heappush(heap, (r, p, end))
            if end < n and (r := self.rank(piece[i : following[end]])) >= 0:
                heapq.heappush(heap, (r, i, following[end]))
        return [i for i in range(n) if alive[i]] + [n]

    def _pieces(self, text: str) -> Iterable[bytes]:
        for match in self._pattern.finditer(text):
            yield match.group().encode("utf-8")

    def count(self, text: str) -> int:
        total = 0
        for piece in self._pieces(text):
            total += 1 if self.rank(piece) >= 0 else len(self._merge(piece)) - 1
        return total

    def encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._pieces(text):
            if (whole := self.rank(piece)) >= 0:
                ids.append(whole)
                continue
            bounds = self._merge(piece)
            ids.extend(self.rank(piece[a:b]) for a, b in itertools.pairwise(bounds))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        blob, offsets = self._blob, self._offsets
        return b"".join(blob[offsets[i] : offsets[i + 1]] for i in ids).decode("utf-8", "replace")
