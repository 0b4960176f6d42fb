"""MinHash-LSH near-duplicate detection, vectorised with numpy.

Signatures (`MinHasher.signatures`, run in Ray tasks a batch of records at a time): a text's tokens
(words; each CJK character is a token) are hashed once each (xxh3), word n-gram shingles are combined from
those hashes with a rolling multiply-add, and permutation `p` of every shingle of the whole batch is one
multiply-shift `(a_p * s + b_p) >> 32` over one array, its per-record minimum one `np.minimum.reduceat`.
Each band of `rows` signature values is folded into one 64-bit key.

Clusters (`NearDuplicateIndex`, in the driver): band keys and signatures are appended to files as they
arrive, so memory holds one band's keys at a time (16 bytes per record) rather than the corpus; for each
band, records sorting next to each other under an equal key are candidate pairs (each with its
predecessor and with the first of its bucket); with a threshold, a pair counts only if the share of equal
signature values (the Jaccard estimate, from rows read back from the spill file) reaches it. Connected
records form a cluster whose first record (in input order) is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import xxhash
from forge_contracts.processing import NearDedup

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)
_ROLL = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(32)
CONFIRM_PAIRS = 8192
"""Candidate pairs confirmed at a time: their signature rows (1 KiB each by default) are what is held."""


def tokens(text: str, lowercase: bool) -> list[str]:
    return _TOKEN.findall(text.lower() if lowercase else text)


class MinHasher:
    def __init__(self, params: NearDedup, seed: int) -> None:
        self.params = params
        rng = np.random.default_rng([seed, 0x5EED])
        count = params.permutations
        self.a = rng.integers(1, 2**63, size=count, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=count, dtype=np.uint64)
        self.fold = rng.integers(1, 2**63, size=params.rows, dtype=np.uint64) | np.uint64(1)

    def shingles(self, text: str) -> np.ndarray:
        """The shingle hashes of a text (empty when it has no tokens); a text shorter than a shingle is
        one shingle."""
        words = tokens(text, self.params.lowercase)
        if not words:
            return np.empty(0, dtype=np.uint64)
        encoded = map(str.encode, words)
        hashed = np.fromiter(map(xxhash.xxh3_64_intdigest, encoded), dtype=np.uint64, count=len(words))
        n = min(self.params.ngram, len(hashed))
        width = len(hashed) - n + 1
        rolled = hashed[:width].copy()
        for j in range(1, n):
            rolled *= _ROLL
            rolled += hashed[j : j + width]
        return rolled

    def signatures(self, texts: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """`(signatures [n, permutations] uint32, has_text [n] bool)`; rows without text are zeros."""
        parts = [self.shingles(t) if t else np.empty(0, dtype=np.uint64) for t in texts]
        sizes = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        has = sizes > 0
        out = np.zeros((len(texts), self.params.permutations), dtype=np.uint32)
        if not has.any():
            return out, has
        flat = np.concatenate([p for p in parts if len(p)])
        starts = np.concatenate(([0], np.cumsum(sizes[has])[:-1]))
        rows = np.flatnonzero(has)
        scratch = np.empty_like(flat)
        for p in range(self.params.permutations):
            np.multiply(flat, self.a[p], out=scratch)
            scratch += self.b[p]
            scratch >>= _SHIFT
            out[rows, p] = np.minimum.reduceat(scratch, starts)
        return out, has

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """`[n, bands]` uint64: each band's rows (from the signature's first values) folded into one key."""
        p = self.params
        banded = signatures[:, : p.bands * p.rows]
        shaped = banded.reshape(len(signatures), p.bands, p.rows).astype(np.uint64)
        return (shaped * self.fold).sum(axis=2, dtype=np.uint64)


def _read_rows(source: BinaryIO, wanted: np.ndarray, width: int) -> _Rows:
    """The signature rows `wanted` (sorted), read one by one from the spill file: a memory map would put
    every page it touched into the process's resident set, which then grows with the corpus."""
    row_bytes = width * 4
    rows = np.empty((len(wanted), width), dtype=np.uint32)
    for slot, index in enumerate(wanted.tolist()):
        source.seek(index * row_bytes)
        rows[slot] = np.frombuffer(source.read(row_bytes), dtype=np.uint32)
    return _Rows(wanted, rows)


class _Rows:
    """Rows of a signature matrix by their record's dense index."""

    def __init__(self, indices: np.ndarray, rows: np.ndarray) -> None:
        self.indices, self.rows = indices, rows

    def __getitem__(self, wanted: np.ndarray) -> np.ndarray:
        return self.rows[np.searchsorted(self.indices, wanted)]


@dataclass
class Clusters:
    ids: np.ndarray
    """Record ids in arrival order."""
    root: np.ndarray
    """Per record (dense index), the dense index of its cluster's first record (itself if it is kept)."""
    candidate_pairs: int
    confirmed_pairs: int


class NearDuplicateIndex:
    """Band keys and signatures of records with text, spilled to files under `directory`."""

    def __init__(self, params: NearDedup, directory: Path) -> None:
        self.params = params
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._ids = (directory / "ids.bin").open("ab")
        self._signatures = (directory / "signatures.bin").open("ab") if params.threshold else None
        self._bands = [(directory / f"band-{b}.bin").open("ab") for b in range(params.bands)]

    def add(self, ids: np.ndarray, keys: np.ndarray, signatures: np.ndarray) -> None:
        self._ids.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        for band, sink in enumerate(self._bands):
            sink.write(np.ascontiguousarray(keys[:, band]).tobytes())
        if self._signatures is not None:
            self._signatures.write(np.ascontiguousarray(signatures, dtype=np.uint32).tobytes())
        self.count += len(ids)

    def _close(self) -> None:
        for sink in [self._ids, *self._bands, *([self._signatures] if self._signatures else [])]:
            sink.close()

    def clusters(self) -> Clusters:
        self._close()
        p, n = self.params, self.count
        ids = np.fromfile(self.directory / "ids.bin", dtype=np.int64)
        pairs: list[np.ndarray] = []
        for band in range(p.bands):
            path = self.directory / f"band-{band}.bin"
            keys = np.fromfile(path, dtype=np.uint64)
            path.unlink()
            order = np.argsort(keys, kind="stable")
            ordered = keys[order]
            del keys
            same = ordered[1:] == ordered[:-1]
            if not same.any():
                continue
            starts = np.flatnonzero(np.concatenate(([True], ~same)))
            first = np.repeat(order[starts], np.diff(np.concatenate((starts, [n]))))
            follow = np.flatnonzero(same) + 1
            found = np.concatenate(
                (
                    np.stack((order[follow - 1], order[follow]), axis=1),
                    np.stack((first[follow], order[follow]), axis=1),
                )
            )
            pairs.append(np.unique(np.sort(found, axis=1) @ np.array([n, 1], dtype=np.int64)))
        packed = np.unique(np.concatenate(pairs)) if pairs else np.empty(0, dtype=np.int64)
        left, right = packed // max(n, 1), packed % max(n, 1)
        keep = left != right
        left, right = left[keep], right[keep]
        candidates = len(left)
        if p.threshold is not None and candidates:
            confirmed = np.zeros(candidates, dtype=bool)
            with (self.directory / "signatures.bin").open("rb") as signatures:
                for start in range(0, candidates, CONFIRM_PAIRS):
                    a, b = left[start : start + CONFIRM_PAIRS], right[start : start + CONFIRM_PAIRS]
                    rows = _read_rows(signatures, np.union1d(a, b), p.permutations)
                    similarity = (rows[a] == rows[b]).mean(axis=1)
                    confirmed[start : start + CONFIRM_PAIRS] = similarity >= p.threshold
            left, right = left[confirmed], right[confirmed]
        root = np.arange(n, dtype=np.int64)

        def find(x: int) -> int:
            while root[x] != x:
                root[x] = root[root[x]]
                x = int(root[x])
            return x

        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                root[max(ra, rb)] = min(ra, rb)  # the earlier record leads the cluster
        while True:  # point every record at its cluster's first one
            flattened = root[root]
            if np.array_equal(flattened, root):
                break
            root = flattened
        return Clusters(ids=ids, root=root, candidate_pairs=candidates, confirmed_pairs=len(left))


__all__ = ["Clusters", "MinHasher", "NearDuplicateIndex", "tokens"]
