"""Approximate-search indexes over a model's embeddings: build, tune, measure quality and speed.

``IndexSpec`` names one faiss configuration (exact ``Flat``, IVF with an
nprobe sweep, HNSW with an efSearch sweep, product quantization, 8-bit /
fp16 scalar quantization, truncation to the first d dimensions);
``overlap_at_k`` and ``labelled_metrics`` score an index's results against
the exact search and the relevance labels; ``time_single`` /
``time_batch`` time single-query and batched search. The experiment that
uses them is :mod:`lib.efficiency`.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Sequence

import faiss
import numpy as np
import pandas as pd

from lib.errors import ConfigError
from lib.metric_registry import family, ranx_name

FAMILIES = ("exact", "ivf", "hnsw", "pq", "sq", "trunc")
DUREADER_METRICS = family("dureader")  # csv names (lib.metric_registry)


# --------------------------------------------------------------------------
# Quality


def overlap_at_k(ids: np.ndarray, exact_ids: np.ndarray, k: int = 10) -> np.ndarray:
    """Per query, the share of its exact top-k found in the approximate top-k (recall of the exact top-k).

    faiss pads a list with id -1 when it finds fewer than k neighbours: such a
    slot finds nothing in ``ids`` and is no neighbour in ``exact_ids`` (the
    share is over the exact list's real ids; NaN when it has none).
    """
    k = min(k, exact_ids.shape[1], ids.shape[1])
    out = np.full(len(ids), np.nan)
    for r, (a, e) in enumerate(zip(ids, exact_ids)):
        want = set(e[:k][e[:k] >= 0].tolist())
        if want:
            out[r] = len(set(a[:k][a[:k] >= 0].tolist()) & want) / len(want)
    return out


def labelled_metrics(ids: np.ndarray, scores: np.ndarray, qids: Sequence[str], doc_ids: Sequence[str],
                     qrels: pd.DataFrame, metrics: Sequence[str] = DUREADER_METRICS) -> dict[str, float]:
    """Mean ranx metrics (csv names such as ``mrr_at_10``) of a top-k result.

    Rows of ``ids`` / ``scores`` align with ``qids`` and index ``doc_ids``
    (faiss output, -1 = no result). Only queries with a judgement are
    scored (DuReader's test questions carry none); a judged query without a
    relevant passage in its list scores 0. Fed to ranx as numeric arrays,
    as ``lib.metrics`` does.
    """
    from ranx import evaluate

    doc_pos = {d: i for i, d in enumerate(map(str, doc_ids))}
    judged: dict[str, list[int]] = {}
    for qid, doc in zip(qrels["qid"].astype(str), qrels["doc_id"].astype(str)):
        if doc not in doc_pos:
            raise ConfigError(f"qrels name doc_id {doc!r} (query {qid!r}) that is not among the docs searched")
        judged.setdefault(qid, []).append(doc_pos[doc])
    rows = [i for i, q in enumerate(map(str, qids)) if q in judged]
    if not rows:
        raise ConfigError("labelled_metrics: no query of the result has a judgement in qrels; check that "
                          "qrels.qid uses the same ids as the queries")
    width = max(len(judged[str(qids[i])]) for i in rows)
    qrel_arr = np.zeros((len(rows), width, 2))
    qrel_arr[:, :, 0] = -1.0
    k = ids.shape[1]
    run = np.empty((len(rows), k, 2))
    filler = len(doc_ids) + np.arange(k)  # ids that no qrel names, for missing results
    for r, i in enumerate(rows):
        rel = judged[str(qids[i])]
        qrel_arr[r, :len(rel), 0], qrel_arr[r, :len(rel), 1] = rel, 1.0
        found = ids[i] >= 0
        run[r, :, 0] = np.where(found, ids[i], filler)
        run[r, :, 1] = np.where(found, scores[i], -1e9 - np.arange(k))
    names = {m: ranx_name(m) for m in metrics}
    values = evaluate(qrel_arr, run, list(names.values()), threads=1, save_results_in_run=False)
    values = values if isinstance(values, dict) else {next(iter(names.values())): values}
    return {m: float(values[r]) for m, r in names.items()}


# --------------------------------------------------------------------------
# Index specifications and building


@dataclass(frozen=True)
class IndexSpec:
    """One index configuration and the search-time knob swept over it."""

    family: str  # exact | ivf | hnsw | pq | sq | trunc
    factory: str  # faiss index_factory string, e.g. "IVF431,Flat", "HNSW32", "PQ32x8", "SQ8"
    base: str  # the build parameters as text, e.g. "nlist=431" (first part of ``param``)
    knob: str = ""  # "nprobe" | "efSearch" | "" (nothing swept)
    values: tuple[int, ...] = ()
    dim: int = 0  # trunc: keep the first ``dim`` dimensions (0 = all)

    def params(self) -> list[tuple[int | None, str]]:
        """(knob value, ``param`` text) for each point of this spec."""
        if not self.knob:
            return [(None, self.base)]
        return [(v, f"{self.base},{self.knob}={v}") for v in self.values]


def ivf_nlist(n_docs: int) -> int:
    """IVF cells: about 4 * sqrt(N), and at least 2 vectors per cell."""
    return int(max(1, min(round(4 * math.sqrt(n_docs)), n_docs // 2)))


def default_specs(n_docs: int, dim: int, families: Sequence[str] = FAMILIES,
                  nprobes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
                  ef_searches: Sequence[int] = (16, 32, 64, 128, 256), hnsw_m: int = 32,
                  pq: Sequence[tuple[int, int]] = ((8, 8), (16, 8), (32, 8), (96, 4)),
                  sq: Sequence[str] = ("SQ8", "SQfp16"), dims: Sequence[int] = (384, 256, 128, 64),
                  pq_min_points: int = 39) -> list[IndexSpec]:
    """The sweep for ``n_docs`` vectors of width ``dim``; configurations that cannot apply are left out
    (nprobe > nlist, PQ sub-quantizers not dividing ``dim`` or with fewer than ``pq_min_points``
    vectors per centroid (faiss's advice is 39), truncation wider than ``dim``). PQ is plain
    ``IndexPQ`` (``np``: no polysemous training, which costs far more than the k-means here and
    changes nothing for exhaustive search)."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ConfigError(f"families {sorted(unknown)} unknown; use some of {FAMILIES}")
    specs = []
    if "exact" in families:
        specs.append(IndexSpec("exact", "Flat", f"dim={dim}"))
    if "ivf" in families:
        nlist = ivf_nlist(n_docs)
        probes = tuple(p for p in nprobes if p <= nlist) or (nlist,)
        specs.append(IndexSpec("ivf", f"IVF{nlist},Flat", f"nlist={nlist}", "nprobe", probes))
    if "hnsw" in families:
        specs.append(IndexSpec("hnsw", f"HNSW{hnsw_m}", f"M={hnsw_m}", "efSearch", tuple(ef_searches)))
    if "pq" in families:
        specs += [IndexSpec("pq", f"PQ{m}x{b}np", f"m={m},nbits={b}") for m, b in pq
                  if dim % m == 0 and n_docs >= pq_min_points * 2 ** b]
    if "sq" in families:
        specs += [IndexSpec("sq", q, f"qtype={q[2:]}") for q in sq]
    if "trunc" in families:
        specs += [IndexSpec("trunc", "Flat", f"dim={d}", dim=d) for d in dims if d < dim]
    return specs


def truncate(emb: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` dimensions of each row, L2-renormalised (float32, C-contiguous)."""
    emb = np.asarray(emb, dtype=np.float32)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= emb.shape[1]:
        raise ConfigError(f"truncation dim={dim!r} is not possible for {emb.shape[1]}-dimensional embeddings: "
                          f"use 1..{emb.shape[1]}")
    out = np.ascontiguousarray(emb[:, :dim])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def make_index(factory: str, dim: int) -> faiss.Index:
    """An empty inner-product faiss index from a factory string; ConfigError when faiss rejects it."""
    try:
        return faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"faiss cannot build index factory string {factory!r} for {dim}-dim vectors "
                          f"({reason.split(': ', 1)[-1]}); use e.g. 'Flat', 'IVF<nlist>,Flat', 'HNSW32', "
                          "'PQ<m>x<nbits>' with m dividing the dimension, 'SQ8'") from exc


def build_index(factory: str, docs: np.ndarray) -> tuple[faiss.Index, float]:
    """Train (when needed) and fill an index; return it with the build time in seconds."""
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    index = make_index(factory, docs.shape[1])
    _training_params(index)
    start = time.perf_counter()
    try:
        if not index.is_trained:
            index.train(docs)
        index.add(docs)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0].split(": ", 1)[-1]
        raise ConfigError(f"faiss could not train index {factory!r} on {len(docs)} vectors ({reason}); "
                          "use fewer IVF cells / PQ centroids or more vectors") from exc
    return index, time.perf_counter() - start


def _training_params(index: faiss.Index) -> None:
    """k-means settings: no "please provide at least 39 * k training points" warning (the pools here
    are known to be small for it), and 10 iterations for PQ codebooks (faiss's default for IVF; its
    PQ default of 25 costs minutes on 2 cores with 8-bit codebooks and gains little)."""
    with contextlib.suppress(RuntimeError):
        faiss.extract_index_ivf(index).cp.min_points_per_centroid = 1
    pq = getattr(index, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1
        pq.cp.niter = 10


def set_knob(index: faiss.Index, knob: str, value: int) -> None:
    """Set nprobe (IVF) or efSearch (HNSW); ConfigError when it does not apply or is out of range."""
    if knob == "nprobe":
        try:
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError as exc:
            raise ConfigError(f"nprobe applies to IVF indexes only, not {type(index).__name__}") from exc
        if not 1 <= value <= ivf.nlist:
            raise ConfigError(f"nprobe={value} is larger than nlist={ivf.nlist} (or below 1): an IVF index "
                              f"can probe 1..{ivf.nlist} cells; lower nprobe or build more cells")
        ivf.nprobe = int(value)
    elif knob == "efSearch":
        if not hasattr(index, "hnsw"):
            raise ConfigError(f"efSearch applies to HNSW indexes only, not {type(index).__name__}")
        if value < 1:
            raise ConfigError(f"efSearch={value}: use a positive integer")
        index.hnsw.efSearch = int(value)
    else:
        raise ConfigError(f"search parameter {knob!r} unknown; use 'nprobe' (IVF) or 'efSearch' (HNSW)")


def check_spec(spec: IndexSpec, dim: int) -> None:
    """Reject a spec that cannot apply to ``dim``-wide embeddings before anything is built."""
    if spec.family not in FAMILIES:
        raise ConfigError(f"index family {spec.family!r} unknown; use one of {FAMILIES}")
    if spec.dim and spec.dim > dim:
        raise ConfigError(f"truncation dim={spec.dim} is larger than the embedding width {dim}: use 1..{dim}")
    if spec.knob == "nprobe" and spec.factory.startswith("IVF"):
        nlist = int(spec.factory[3:].split(",")[0].split("_")[0])
        too_big = [v for v in spec.values if v > nlist]
        if too_big:
            raise ConfigError(f"nprobe {too_big} larger than nlist={nlist} of {spec.factory!r}: "
                              f"use nprobe in 1..{nlist}")


def index_size(index: faiss.Index) -> dict[str, float]:
    """Serialized bytes, bytes per vector, and the codec's bytes per vector where faiss has one."""
    size = int(faiss.serialize_index(index).size)
    out = {"index_bytes": float(size), "bytes_per_vector": size / max(1, index.ntotal)}
    try:
        out["code_bytes_per_vector"] = float(index.sa_code_size())
    except RuntimeError:
        storage = getattr(index, "storage", None)  # HNSW: the stored vectors, links excluded
        if storage is not None:
            out["code_bytes_per_vector"] = float(storage.sa_code_size())
    return out


# --------------------------------------------------------------------------
# Timing


def time_single(targets: dict[str, tuple[faiss.Index, np.ndarray]], k: int = 10, repeats: int = 3,
                warmup: int = 5) -> dict[str, np.ndarray]:
    """Seconds per single-query search for each ``name -> (index, queries)``: per query, the median over
    ``repeats``. Models are interleaved within each repeat, so a change in machine load hits all alike."""
    n = min(len(q) for _, q in targets.values())
    for index, q in targets.values():
        for row in q[:warmup]:
            index.search(row[None], min(k, index.ntotal))
    times = {name: np.empty((repeats, n)) for name in targets}
    for r in range(repeats):
        for name, (index, q) in targets.items():
            kk = min(k, index.ntotal)
            for i in range(n):
                row = q[i:i + 1]
                t0 = time.perf_counter()
                index.search(row, kk)
                times[name][r, i] = time.perf_counter() - t0
    return {name: np.median(t, axis=0) for name, t in times.items()}


def time_batch(targets: dict[str, tuple[faiss.Index, np.ndarray]], k: int = 10,
               repeats: int = 3) -> dict[str, np.ndarray]:
    """Seconds to search all queries in one call, per repeat (after one warm-up call), interleaved."""
    for index, q in targets.values():
        index.search(q, min(k, index.ntotal))
    out: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(repeats):
        for name, (index, q) in targets.items():
            t0 = time.perf_counter()
            index.search(q, min(k, index.ntotal))
            out[name].append(time.perf_counter() - t0)
    return {name: np.asarray(v) for name, v in out.items()}
