"""Chunked, blocked ranking (``retrieval.block_ranks``) against a plain-Python pessimistic ranking.

Embeddings are rounded to a coarse grid (integers in -2..2, 3 dimensions), so
scores are small integers computed exactly in float32 and many candidates
tie, across and inside language blocks. The oracle below applies the tie
rule of ``lib/retrieval.py`` literally, one candidate at a time: a relevant
candidate ranks after every candidate with a higher score, after every
non-relevant candidate with the same score, and after the tied relevant
candidates listed before it.
"""
from __future__ import annotations

import numpy as np
import pytest

from lib.retrieval import block_ranks


def oracle_ranks(scores: list[float], relevant: list[int], members: list[int]) -> list[int]:
    """Pessimistic rank of each relevant candidate among the candidates ``members`` (plain Python)."""
    rel_set = set(relevant) & set(members)
    ranks = []
    for pos, c in enumerate(relevant):
        s = scores[c]
        rank = 1
        for x in members:
            if scores[x] > s:
                rank += 1
            elif scores[x] == s and x != c and x not in rel_set:
                rank += 1
        rank += sum(1 for earlier in relevant[:pos] if earlier in rel_set and scores[earlier] == s)
        ranks.append(rank)
    return ranks


def oracle(queries: np.ndarray, pool: np.ndarray, relevant, bounds) -> tuple[list[list[int]], list[list[int]]]:
    blocks = [list(range(bounds[b], bounds[b + 1])) for b in range(len(bounds) - 1)]
    block_of = {c: b for b, members in enumerate(blocks) for c in members}
    pooled, own = [], []
    for i, q in enumerate(queries.tolist()):
        scores = [sum(a * b for a, b in zip(q, p)) for p in pool.tolist()]  # exact: small integers
        rel = [int(c) for c in relevant[i]]
        pooled.append(oracle_ranks(scores, rel, list(range(len(pool)))))
        mine = []
        for c in rel:
            members = blocks[block_of[c]]
            same_block = [x for x in rel if block_of[x] == block_of[c]]
            mine.append(oracle_ranks(scores, same_block, members)[same_block.index(c)])
        own.append(mine)
    return pooled, own


def tied_case(seed: int, n_q: int = 37, n_pool: int = 60, dim: int = 3):
    """Integer embeddings (rounded to a coarse grid) in 4 language blocks, one of them empty."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(-2, 3, size=(n_q, dim)).astype(np.float32)
    pool = rng.integers(-2, 3, size=(n_pool, dim)).astype(np.float32)
    bounds = [0, 14, 14, 35, n_pool]
    relevant = []
    for i in range(n_q):
        # one candidate per non-empty block (the language versions of an item) plus, sometimes, an extra one
        rel = [int(rng.integers(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        if i % 3 == 0:
            extra = int(rng.integers(0, n_pool))
            if extra not in rel:
                rel.append(extra)
        if i % 5 == 0:  # a relevant candidate that ties with another relevant one in the same block
            twin = np.flatnonzero((pool == pool[rel[0]]).all(1) & (np.arange(n_pool) < bounds[1]))
            rel += [int(t) for t in twin if int(t) not in rel][:1]
        relevant.append(list(rng.permutation(rel)))
    return queries, pool, relevant, bounds


def test_the_case_has_ties_across_blocks():
    """Guard: the data really holds relevant/non-relevant ties that span several blocks."""
    queries, pool, relevant, bounds = tied_case(0)
    scores = queries @ pool.T
    spanning = 0
    for i, rel in enumerate(relevant):
        for c in rel:
            tied = np.flatnonzero(scores[i] == scores[i, c])
            tied_nonrel = [x for x in tied if x not in rel]
            blocks = set(np.searchsorted(bounds, tied_nonrel, side="right") - 1)
            spanning += len(blocks) >= 2
    assert spanning >= 30


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_block_ranks_equal_default_and_plain_python_oracle(seed):
    queries, pool, relevant, bounds = tied_case(seed)
    want_pool, want_own = oracle(queries, pool, relevant, bounds)
    default = block_ranks(queries, pool, relevant, bounds, top_k=5)
    row = 4 * len(pool)  # chunk_bytes of one query row
    for chunk_bytes in (1, row, 2 * row, 5 * row - 1, 7 * row, 10**9):
        pooled, own, top = block_ranks(queries, pool, relevant, bounds, top_k=5, chunk_bytes=chunk_bytes)
        for i in range(len(queries)):
            assert pooled[i].tolist() == want_pool[i], (chunk_bytes, i)
            assert own[i].tolist() == want_own[i], (chunk_bytes, i)
            assert pooled[i].tolist() == default[0][i].tolist()
            assert own[i].tolist() == default[1][i].tolist()
        np.testing.assert_array_equal(top, default[2])
    # top ids: the k best scores, whatever the tie order
    scores = queries @ pool.T
    np.testing.assert_array_equal(np.take_along_axis(scores, default[2], 1), -np.sort(-scores, 1)[:, :5])


def test_single_query_and_uneven_last_chunk():
    queries, pool, relevant, bounds = tied_case(3, n_q=11)
    want_pool, want_own = oracle(queries, pool, relevant, bounds)
    pooled, own, _ = block_ranks(queries, pool, relevant, bounds, chunk_bytes=4 * len(pool) * 4)  # chunks 4,4,3
    assert [r.tolist() for r in pooled] == want_pool
    assert [r.tolist() for r in own] == want_own
    one, one_own, _ = block_ranks(queries[-1:], pool, relevant[-1:], bounds, chunk_bytes=1)
    assert one[0].tolist() == want_pool[-1] and one_own[0].tolist() == want_own[-1]
