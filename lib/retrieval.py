"""Embedding cache, exact full-pool ranks of relevant candidates, and top-k search.

- :func:`encode_cached` embeds texts once per (model fingerprint, texts,
  encode settings) and keeps them under
  ``results/<profile>/embeddings/<model>/<dataset>/<role>.npy``, with a JSON
  sidecar holding the key; a changed model or changed texts re-encode.
- :func:`relevant_ranks` gives the exact 1-based rank of every relevant
  candidate in the full ranking of a pool (no truncation), which is all that
  full-pool AP and rank distance need.
- :func:`topk_search` is exact inner-product search with faiss
  (``IndexFlatIP``) for top-k metrics.

Tie rule (pessimistic): a relevant candidate is ranked after every
non-relevant candidate with the same score; relevant candidates that tie
with each other take consecutive ranks in input order. So its rank is
``1 + #(candidates scoring strictly higher) + #(non-relevant candidates with
an equal score) + #(relevant candidates with an equal score listed before
it)``. The ranks of one query's relevant candidates are distinct and are
the positions they would hold in one concrete (worst-case) ranking.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numba
import numpy as np
import torch

from lib import machine
from lib.errors import ConfigError, ModelError
from lib.paths import atomic_write, results_dir

CACHE_VERSION = 1


# --------------------------------------------------------------------------
# Fingerprints


def _sha(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def texts_fingerprint(texts: Sequence[str]) -> str:
    """Hash of the texts in order (any edit, reordering or subset changes it)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """Hash of a model folder: every file's relative path, size and mtime, plus the
    content of its small JSON files (configs). Rewriting the weights changes it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist; pass a folder written by Encoder.save "
                         "or a trained run folder results/<profile>/models/<run_name>/")
    entries = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        st = p.stat()
        content = p.read_text(errors="replace") if p.suffix == ".json" and st.st_size < 1_000_000 else ""
        entries.append((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns, content))
    return _sha("folder", entries)


def encoder_fingerprint(encoder) -> str:
    """Hash of an in-memory encoder: config, pooling, prefixes and, per weight
    tensor, its name, shape, sum, sum of squares and first values.

    Any training step changes these statistics; costs about a second for the
    embedded backbone.
    """
    parts: list[object] = [encoder.model.config.to_json_string(), encoder.pooling,
                           encoder.query_prefix, encoder.passage_prefix]
    with torch.no_grad():
        for name, t in encoder.model.state_dict().items():
            t64 = t.detach().reshape(-1).to(torch.float64)
            parts.append((name, tuple(t.shape), float(t64.sum()), float((t64 * t64).sum()),
                          t64[:4].tolist()))
    return _sha("encoder", parts)


# --------------------------------------------------------------------------
# Embedding cache


def embedding_dir(profile: str, model: str, dataset: str) -> Path:
    """``results/<profile>/embeddings/<model>/<dataset>/``."""
    return results_dir(profile) / "embeddings" / model / dataset


def _cache_key(model_fp: str, texts_fp: str, role: str, max_length: int, n: int) -> dict:
    # precision: what Encoder.encode computes in on this CPU (bf16 autocast or fp32), so that embeddings
    # made in one precision never stand in for the other (HBT_BF16, an fp32 profile, another machine)
    return {"version": CACHE_VERSION, "model": model_fp, "texts": texts_fp, "role": role,
            "max_length": int(max_length), "n": int(n), "precision": machine.precision()}


def load_cached(folder: Path, role: str, key: dict | None = None) -> np.ndarray | None:
    """Cached embeddings of ``role`` in ``folder`` if present (and matching ``key`` when given)."""
    npy, meta = folder / f"{role}.npy", folder / f"{role}.json"
    if not (npy.is_file() and meta.is_file()):
        return None
    try:
        stored = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return None
    if key is not None and stored.get("key") != key:
        return None
    emb = np.load(npy)
    if emb.ndim != 2 or emb.shape[0] != stored["key"]["n"]:
        return None
    return emb


def encode_cached(encoder, texts: Sequence[str], role: str, *, profile: str, model: str, dataset: str,
                  model_fp: str, max_length: int = 128, batch_size: int = 64,
                  progress: bool | None = None) -> np.ndarray:
    """Embeddings of ``texts`` (float32, L2-normalised), from the cache when its key matches.

    ``encoder`` is an ``Encoder`` or a zero-argument callable returning one
    (called only on a cache miss, so a hit never loads the model). The key
    is the model fingerprint, the texts' hash, ``role``, ``max_length`` and the
    precision (:func:`lib.machine.precision`). The sidecar also names the
    backend that encoded (torch or OpenVINO, :mod:`lib.openvino_backend`),
    outside the key: the two agree to cosine 0.9999 and mAP 0.001
    (``benchmarks/encode_backends.py``), so either's embeddings serve;
    the old key is removed, then the ``.npy`` and the new JSON key are
    written atomically, so an interrupted write is a miss next time, never
    a wrong hit.
    """
    texts = list(texts)
    folder = embedding_dir(profile, model, dataset)
    key = _cache_key(model_fp, texts_fingerprint(texts), role, max_length, len(texts))
    cached = load_cached(folder, role, key)
    if cached is not None:
        return cached
    enc = encoder() if callable(encoder) and not hasattr(encoder, "encode") else encoder
    emb = np.ascontiguousarray(enc.encode(texts, role, batch_size=batch_size, max_length=max_length,
                                          progress=progress), dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{role}.json").unlink(missing_ok=True)  # no key may vouch for a half-replaced cache
    with atomic_write(folder / f"{role}.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, emb)
    with atomic_write(folder / f"{role}.json") as tmp:
        tmp.write_text(json.dumps({"key": key, "dim": int(emb.shape[1]),
                                   "backend": getattr(enc, "last_backend", "") or "torch"}, indent=1) + "\n")
    return emb


# --------------------------------------------------------------------------
# Exact ranks in the full pool


def pad_relevant(relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """List of per-query candidate index lists -> (n_queries, max_len) int64 array, -1 padded."""
    width = max((len(r) for r in relevant), default=0)
    out = np.full((len(relevant), max(width, 1)), -1, dtype=np.int64)
    for i, r in enumerate(relevant):
        out[i, :len(r)] = r
    return out


@numba.njit(parallel=True, cache=True)
def _block_counts(scores, thresholds, bounds):  # pragma: no cover - compiled
    """counts[i, j, b] = #(candidates c in block b with scores[i, c] >= thresholds[i, j]).

    Blocks are the column ranges ``bounds[b]:bounds[b + 1]``. Each score is
    placed among the row's sorted thresholds by a short linear scan that
    stops at once for the (many) scores below every threshold, so a row
    costs about one comparison per candidate.
    """
    n, width = thresholds.shape
    n_blocks = len(bounds) - 1
    counts = np.zeros((n, width, n_blocks), dtype=np.int64)
    for i in numba.prange(n):
        order = np.argsort(thresholds[i])
        ts = thresholds[i][order]
        hist = np.zeros((n_blocks, width + 1), dtype=np.int64)
        for b in range(n_blocks):
            for c in range(bounds[b], bounds[b + 1]):
                s = scores[i, c]
                if s < ts[0]:
                    continue
                j = 1
                while j < width and ts[j] <= s:
                    j += 1
                hist[b, j] += 1
        for b in range(n_blocks):
            running = 0
            for k in range(width - 1, -1, -1):
                running += hist[b, k + 1]
                counts[i, order[k], b] = running
    return counts


def _tie_adjust(at_least: np.ndarray, t: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Pessimistic ranks from counts of candidates scoring >= each relevant one.

    ``group`` (b, w): relevant slots that compete in the same ranking share a
    group id (-1 = padding). Tied relevant candidates of one group take
    consecutive ranks in slot order, after the tied non-relevant ones.
    """
    valid = group >= 0
    tie = (t[:, :, None] == t[:, None, :]) & (group[:, :, None] == group[:, None, :])
    tie &= valid[:, :, None] & valid[:, None, :]
    n_rel_tied = tie.sum(-1)
    width = t.shape[1]
    before = np.tril(np.ones((width, width), dtype=bool), k=-1)
    pos = (tie & before).sum(-1) + 1
    return np.where(valid, at_least - n_rel_tied + pos, 0)


def block_ranks(queries: np.ndarray, pool: np.ndarray, relevant: Sequence[Sequence[int]],
                bounds: Sequence[int] | None = None, top_k: int = 0,
                threads: int | None = None, chunk_bytes: int = 64_000_000):
    """Exact ranks of relevant candidates in the whole pool and inside each block.

    ``pool`` rows are grouped into contiguous blocks ``bounds[b]:bounds[b+1]``
    (e.g. one block per candidate language; default: one block). Returns
    ``(pool_ranks, own_block_ranks, top_ids)``: per query, int arrays aligned
    with ``relevant[i]`` giving each relevant candidate's 1-based rank in the
    ranking of the whole pool and in the ranking of its own block alone
    (competing only with its block's relevant candidates); ``top_ids`` is the
    (n, top_k) array of the best pool indices (None when ``top_k`` is 0).
    One matrix product per query chunk serves every block.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    if queries.ndim != 2 or pool.ndim != 2 or queries.shape[1] != pool.shape[1]:
        raise ConfigError(f"relevant ranks: queries {queries.shape} and pool {pool.shape} must be 2-D "
                          "with the same embedding width")
    if len(relevant) != len(queries):
        raise ConfigError(f"relevant ranks: {len(relevant)} relevant lists for {len(queries)} queries")
    bounds = np.asarray([0, len(pool)] if bounds is None else bounds, dtype=np.int64)
    if bounds[0] != 0 or bounds[-1] != len(pool) or np.any(np.diff(bounds) < 0):
        raise ConfigError(f"relevant ranks: block bounds {bounds.tolist()} must rise from 0 to {len(pool)}")
    rel = pad_relevant(relevant)
    if rel.size and rel.max() >= len(pool):
        raise ConfigError(f"relevant ranks: relevant index {rel.max()} outside a pool of {len(pool)}")
    n_threads = int(threads or torch.get_num_threads())
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    pool_ranks = np.zeros(rel.shape, dtype=np.int64)
    own_ranks = np.zeros(rel.shape, dtype=np.int64)
    top_ids = np.zeros((len(queries), min(top_k, len(pool))), dtype=np.int64) if top_k else None
    step = int(max(1, chunk_bytes // (4 * max(1, len(pool)))))
    pool_t = torch.from_numpy(pool).T.contiguous()
    try:
        with torch.inference_mode():
            for start in range(0, len(queries), step):
                sl = slice(start, start + step)
                s = torch.from_numpy(queries[sl]) @ pool_t
                if top_ids is not None:
                    top_ids[sl] = torch.topk(s, top_ids.shape[1], dim=1).indices.numpy()
                s = s.numpy()
                r = rel[sl]
                valid = r >= 0
                t = np.where(valid, np.take_along_axis(s, np.maximum(r, 0), 1), np.inf).astype(np.float32)
                counts = _block_counts(s, t, bounds)
                blk = np.where(valid, np.searchsorted(bounds, np.maximum(r, 0), side="right") - 1, -1)
                pool_ranks[sl] = _tie_adjust(counts.sum(-1), t, np.where(valid, 0, -1))
                own = np.take_along_axis(counts, np.maximum(blk, 0)[:, :, None], 2)[:, :, 0]
                own_ranks[sl] = _tie_adjust(own, t, blk)
    finally:
        torch.set_num_threads(old_threads)
    split = lambda a: [a[i, :len(x)].copy() for i, x in enumerate(relevant)]  # noqa: E731
    return split(pool_ranks), split(own_ranks), top_ids


def relevant_ranks(queries: np.ndarray, pool: np.ndarray, relevant: Sequence[Sequence[int]],
                   threads: int | None = None) -> list[np.ndarray]:
    """Exact 1-based rank of each relevant candidate in the full ranking of ``pool``.

    ``queries`` (n, d) and ``pool`` (m, d) are embeddings (score = inner
    product); ``relevant[i]`` lists the pool indices relevant to query ``i``.
    Returns, per query, an int array of ranks aligned with ``relevant[i]``
    (not sorted). Ties follow the module's pessimistic rule.
    """
    return block_ranks(queries, pool, relevant, threads=threads)[0]


# --------------------------------------------------------------------------
# Top-k search


def topk_search(queries: np.ndarray, pool: np.ndarray, k: int = 10, threads: int | None = None,
                batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with faiss ``IndexFlatIP``.

    Returns ``(scores, ids)`` of shape (n, min(k, len(pool))), best first.
    ``threads`` sets faiss's OpenMP threads (default: torch's thread count).
    """
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    if len(pool) == 0:
        raise ConfigError("topk_search: the candidate pool is empty")
    k = int(min(k, len(pool)))
    if k < 1:
        raise ConfigError(f"topk_search: k={k} must be positive")
    faiss.omp_set_num_threads(int(threads or torch.get_num_threads()))
    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(pool)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        s, i = index.search(queries[start:start + batch_size], k)
        scores[start:start + batch_size], ids[start:start + batch_size] = s, i
    return scores, ids


def resolve_encoder(encoder: object) -> Callable[[], object]:
    """Wrap an Encoder (or a loader callable) as a zero-argument loader that loads once."""
    state: dict[str, object] = {}

    def get():
        if "enc" not in state:
            state["enc"] = encoder() if callable(encoder) and not hasattr(encoder, "encode") else encoder
        return state["enc"]
    return get
