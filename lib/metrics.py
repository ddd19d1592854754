"""Per-query retrieval metrics from the ranks of the relevant candidates.

Everything here starts from a query's relevant ranks: the 1-based positions
of its relevant candidates in the full ranking of the pool (see
``lib.retrieval`` for the exact computation and the pessimistic tie rule).

- Full-pool average precision: with sorted ranks r_1 < ... < r_R,
  ``AP = mean_i i / r_i`` (= sklearn's ``average_precision_score`` on the
  whole pool without ties, and = ranx ``map`` on a run covering the pool).
  With one relevant candidate AP is the reciprocal rank.
- Rank distance (language bias, Huang et al. 2023): ``max(r) - min(r)`` in
  the multilingual pool; defined only with at least two relevant
  candidates (NaN otherwise).
- Top-k metrics by ranx (trec_eval definitions), fed the exact top k built
  from the ranks: ``ndcg@10``, ``mrr@10``, ``recall@1``, ``recall@10``
  (= |relevant in top k| / |relevant|: with one relevant candidate, the
  mono- and cross-lingual settings, this is "the answer is in the top k";
  with several, the multilingual setting, it is the fraction of the
  relevant set found, at most 10/11 on XQuAD-R) and ``hit_rate@10`` (at
  least one relevant candidate in the top 10).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lib.errors import ConfigError
from lib.metric_registry import ranx_names

# csv metric name -> ranx metric name: the top-k metrics of the paper's protocol (lib.metric_registry)
TOPK_METRICS = ranx_names("lareqa")


def _sorted_ranks(ranks: Sequence[int]) -> np.ndarray:
    r = np.sort(np.asarray(ranks, dtype=np.int64))
    if r.size and (r[0] < 1 or np.any(np.diff(r) == 0)):
        raise ConfigError(f"relevant ranks {r.tolist()} must be distinct and >= 1 (1-based positions)")
    return r


def average_precision(ranks: Sequence[int]) -> float:
    """Full-pool AP from the 1-based ranks of all relevant candidates (NaN if none)."""
    r = _sorted_ranks(ranks)
    if r.size == 0:
        return float("nan")
    return float(np.mean(np.arange(1, r.size + 1) / r))


def rank_distance(ranks: Sequence[int]) -> float:
    """Lowest-ranked minus highest-ranked relevant candidate; NaN with fewer than two."""
    r = _sorted_ranks(ranks)
    return float(r[-1] - r[0]) if r.size >= 2 else float("nan")


# Many queries at once: ranks as one flat array plus per-query lengths ("CSR").


def to_flat(ranks_list: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(flat ranks sorted within each query, lengths), checking ranks are distinct and >= 1."""
    lengths = np.fromiter((len(r) for r in ranks_list), dtype=np.int64, count=len(ranks_list))
    flat = (np.concatenate([np.asarray(r, dtype=np.int64) for r in ranks_list]) if lengths.sum()
            else np.zeros(0, dtype=np.int64))
    group = np.repeat(np.arange(len(lengths)), lengths)
    flat = flat[np.lexsort((flat, group))]
    check_flat(flat, lengths)
    return flat, lengths


def check_flat(flat: np.ndarray, lengths: np.ndarray) -> None:
    if flat.size and flat.min() < 1:
        raise ConfigError("relevant ranks must be >= 1 (1-based positions)")
    same_query = np.repeat(np.arange(len(lengths)), lengths)
    if np.any((np.diff(flat) == 0) & (np.diff(same_query) == 0)):
        raise ConfigError("relevant ranks of a query must be distinct")


def _positions(lengths: np.ndarray) -> np.ndarray:
    """1-based position of each flat entry inside its query."""
    starts = np.cumsum(lengths) - lengths
    return np.arange(lengths.sum()) - np.repeat(starts, lengths) + 1


def average_precisions_flat(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """AP per query from sorted flat ranks (NaN for a query without relevant candidates)."""
    terms = _positions(lengths) / np.maximum(flat, 1)
    sums = np.bincount(np.repeat(np.arange(len(lengths)), lengths), weights=terms, minlength=len(lengths))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths > 0, sums / np.maximum(lengths, 1), np.nan)


def rank_distances_flat(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    ends = np.cumsum(lengths)
    starts = ends - lengths
    out = np.full(len(lengths), np.nan)
    ok = lengths >= 2
    out[ok] = flat[ends[ok] - 1] - flat[starts[ok]]
    return out


def average_precisions(ranks_list: Sequence[Sequence[int]]) -> np.ndarray:
    """:func:`average_precision` of each query."""
    return average_precisions_flat(*to_flat(ranks_list))


def rank_distances(ranks_list: Sequence[Sequence[int]]) -> np.ndarray:
    """:func:`rank_distance` of each query."""
    return rank_distances_flat(*to_flat(ranks_list))


def topk_arrays(flat: np.ndarray, lengths: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """ranx inputs (qrels, run) as 3-D arrays holding each query's exact top ``k``.

    Relevant candidate j of a query gets document id j; the run puts it at
    position ``rank - 1`` when its rank is <= k and fills the other
    positions with non-relevant ids. Only the positions of relevant
    candidates matter to the top-k metrics, so this run scores exactly like
    the real top-k list under the same tie rule. qrels rows are padded with
    relevance 0 (ignored by ranx).
    """
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    n = len(lengths)
    width = int(max(lengths.max(initial=1), 1))
    row = np.repeat(np.arange(n), lengths)
    pos = _positions(lengths) - 1
    qrels = np.zeros((n, width, 2), dtype=np.float64)
    qrels[:, :, 0] = -1.0
    qrels[row, pos, 0] = pos
    qrels[row, pos, 1] = 1.0
    run = np.zeros((n, k, 2), dtype=np.float64)
    run[:, :, 0] = width + np.arange(k)[None, :]          # non-relevant filler ids
    run[:, :, 1] = k - np.arange(k)[None, :]              # descending scores
    hit = flat <= k
    run[row[hit], flat[hit] - 1, 0] = pos[hit]
    return qrels, run


def topk_metrics(ranks_list, metrics: dict[str, str] | None = None, threads: int = 0) -> dict[str, np.ndarray]:
    """Per-query top-k metrics computed by ranx, keyed by their csv names (see TOPK_METRICS).

    ``ranks_list``: a list of per-query rank arrays, or a ``(flat, lengths)``
    pair from :func:`to_flat`; ``threads`` for ranx's numba kernels (0 = torch's count)."""
    from ranx import evaluate

    metrics = TOPK_METRICS if metrics is None else metrics
    flat, lengths = ranks_list if isinstance(ranks_list, tuple) else to_flat(ranks_list)
    if len(lengths) == 0:
        return {name: np.zeros(0) for name in metrics}
    k = max(int(m.split("@")[1]) for m in metrics.values())
    qrels, run = topk_arrays(flat, lengths, k)
    if not threads:
        import torch
        threads = torch.get_num_threads()
    scores = evaluate(qrels, run, list(metrics.values()), return_mean=False, threads=threads,
                      save_results_in_run=False)
    if len(metrics) == 1:
        scores = {next(iter(metrics.values())): scores}
    return {name: np.asarray(scores[m], dtype=np.float64) for name, m in metrics.items()}
