"""Inference efficiency of a model's embedding space (study question 1).

The encoder is the same network whatever the training strategy, so the cost
of encoding a text is the same by construction; :mod:`lib.encoding_cost`
measures it (throughput, peak memory, fp32 vs bf16) to show it. What can
differ is how cheaply each model's embedding space can be *searched* at a
given quality. :func:`sweep_models` builds faiss indexes over each model's
passage embeddings (exact ``Flat``, IVF with an nprobe sweep, HNSW with an
efSearch sweep, product quantization, 8-bit / fp16 scalar quantization,
truncation to the first d dimensions) and measures, per point:

- quality: ``overlap_at_10`` (the share of the exact search's top-10 that
  the index returns in its top-10, with its standard error) and labelled
  metrics from ranx (DuReader's official MRR@10, R@1, R@50 plus nDCG@10;
  hit rate, recall and nDCG at 10 in XQuAD-R's multilingual pool);
- cost: single-query latency (per-query median over repeats, then p5 / p50
  / p95 over queries), batched throughput (median and p5 / p95 over
  repeats), serialized index bytes, bytes per vector, build time.

:func:`language_clustering` measures how much a multilingual pool clusters
by language (silhouette by language; share of IVF cells dominated by one
language; purity and entropy of language per cell, against shuffled labels).

:func:`measure_all` runs everything for several models in one process with
fixed thread counts (:func:`set_threads`), the models interleaved in every
timing so that a change in machine load hits all alike, and upserts flat
rows ``model, strategy, alpha, seed, dataset, index, param, value_name,
value`` into ``results/<profile>/efficiency.csv`` (:func:`write_rows`, by
``(model, dataset)``): one set of rows per model, every seed its own model
(``alpha`` and ``seed`` as :class:`lib.models.ModelSpec` has them; NaN for
zero-shot). The tables (per arm: the mean over seeds with the seed spread),
figures and the computed conclusion of notebook 06 are in
:mod:`lib.efficiency_report`; timing helpers in :mod:`lib.timing`.
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lib import strategies as registry
from lib.clustering import language_clustering
from lib.encoding_cost import e2e_latencies, encoding_costs, time_end_to_end
from lib.errors import ConfigError
from lib.evaluation import layout
from lib.indexes import (DUREADER_METRICS, FAMILIES, IndexSpec, build_index, check_spec, default_specs, index_size, labelled_metrics,
                         overlap_at_k, set_knob, time_batch, time_single, truncate)
from lib.models import ZERO_SHOT, describe_model, trained_from, trained_models, zero_shot_model
from lib.paths import results_dir
from lib.results import upsert_csv
from lib.retrieval import encode_cached
from lib.timing import set_threads, spread
from lib.settings import comma_list

COLUMNS = ["model", "strategy", "alpha", "seed", "dataset", "index", "param", "value_name", "value"]
OVERLAP = "overlap_at_10"


# --------------------------------------------------------------------------
# The sweep


def _check_inputs(queries: np.ndarray, docs: np.ndarray, qids, doc_ids) -> tuple[np.ndarray, np.ndarray]:
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    if queries.ndim != 2 or docs.ndim != 2 or queries.shape[1] != docs.shape[1]:
        raise ConfigError(f"queries {queries.shape} and docs {docs.shape} must be 2-D with the same width")
    if len(qids) != len(queries) or len(doc_ids) != len(docs):
        raise ConfigError(f"{len(qids)} qids for {len(queries)} query rows, {len(doc_ids)} doc_ids for "
                          f"{len(docs)} doc rows: they must match")
    return queries, docs


def _frame(rows: list[tuple], model: bool = False) -> pd.DataFrame:
    cols = ["index", "param", "value_name", "value"]
    return pd.DataFrame(rows, columns=["model", *cols] if model else cols)


def sweep_models(embeddings: dict[str, tuple[np.ndarray, np.ndarray]], qids: Sequence[str],
                 doc_ids: Sequence[str], qrels: pd.DataFrame, specs: Sequence[IndexSpec], *,
                 metrics: Sequence[str] = DUREADER_METRICS, k: int = 50, k_latency: int = 10,
                 n_latency: int = 100, n_batch: int = 1000, repeats: int = 3, warmup: int = 5, seed: int = 0,
                 encoders: dict[str, object] | None = None, query_texts: Sequence[str] = (), n_e2e: int = 0,
                 query_max_length: int = 128, progress: bool | None = None) -> pd.DataFrame:
    """Quality and cost of every point of ``specs`` for every model: rows ``model, index, param,
    value_name, value``.

    ``embeddings`` maps a model name to its (queries, docs) embeddings of
    the same texts (rows aligned with ``qids`` / ``doc_ids``); with
    ``metrics=()`` no labelled metric is computed (``qrels`` unused). ``k`` is the
    depth searched for the labelled metrics (R@50 needs 50); latency and
    throughput are timed at depth ``k_latency``, single-query latency on
    ``n_latency`` sampled queries, batched throughput on ``n_batch`` sampled
    queries searched in one call; the models are timed interleaved.

    With ``encoders`` (model name -> Encoder, every model of ``embeddings``),
    ``query_texts`` (aligned with ``qids``) and ``n_e2e > 0``, every point
    also gets ``end_to_end_ms_p5/p50/p95``: one question encoded, truncated
    where the point truncates, and searched, over ``n_e2e`` of the latency
    questions, questions in turn and models interleaved.
    """
    embeddings = {m: _check_inputs(q, d, qids, doc_ids) for m, (q, d) in embeddings.items()}
    dim = next(iter(embeddings.values()))[1].shape[1]
    for spec in specs:
        check_spec(spec, dim)
    qids = [str(q) for q in qids]
    exact_ids = {}
    for m, (q, d) in embeddings.items():
        exact = faiss.IndexFlatIP(d.shape[1])
        exact.add(d)
        exact_ids[m] = exact.search(q, min(10, len(d)))[1]
    n_queries = len(qids)
    rng = np.random.default_rng(seed)
    lat = np.sort(rng.choice(n_queries, size=min(n_latency, n_queries), replace=False))
    batch = np.sort(rng.choice(n_queries, size=min(n_batch, n_queries), replace=False))
    e2e = _e2e_plan(embeddings, encoders, query_texts, n_e2e, lat)
    rows = []
    total = sum(len(s.params()) for s in specs)
    with tqdm(total=total, desc="index sweep", disable=not (total > 10 if progress is None else progress)) as bar:
        for spec in specs:
            built = {}
            for m, (q, d) in embeddings.items():
                q, d = (truncate(q, spec.dim), truncate(d, spec.dim)) if spec.dim else (q, d)
                index, build_s = build_index(spec.factory, d)
                built[m] = (index, q, {**index_size(index), "build_s": build_s})
            for value, param in spec.params():
                values = {}
                for m, (index, q, fixed) in built.items():
                    if value is not None:
                        set_knob(index, spec.knob, value)
                    scores, ids = index.search(q, min(k, index.ntotal))
                    overlap = overlap_at_k(ids, exact_ids[m], 10)
                    se = overlap.std(ddof=1) / np.sqrt(len(overlap)) if len(overlap) > 1 else float("nan")
                    values[m] = {OVERLAP: overlap.mean(), f"{OVERLAP}_se": se, **fixed}
                    if metrics:
                        values[m].update(labelled_metrics(ids, scores, qids, doc_ids, qrels, metrics))
                single = time_single({m: (i, q[lat]) for m, (i, q, _) in built.items()}, k_latency, repeats, warmup)
                batched = time_batch({m: (i, q[batch]) for m, (i, q, _) in built.items()}, k_latency, repeats)
                if e2e is not None:
                    _, ends = time_end_to_end({m: (encoders[m], i) for m, (i, _, _) in built.items()}, e2e,
                                              dim=spec.dim, k=k_latency, max_length=query_max_length)
                    for m in built:
                        values[m].update(spread(ends[m], "end_to_end_ms", 1e3))
                for m in built:
                    values[m].update(spread(single[m], "latency_ms", 1e3))
                    values[m].update(spread(len(batch) / batched[m], "batch_qps"))
                    rows += [(m, spec.family, param, name, float(v)) for name, v in values[m].items()]
                bar.update(1)
    return _frame(rows, model=True)


def _e2e_plan(embeddings: dict, encoders: dict | None, query_texts: Sequence[str], n_e2e: int,
              lat: np.ndarray) -> list[str] | None:
    """The questions timed end to end at every point (the first ``n_e2e`` latency questions), or None."""
    if not n_e2e:
        return None
    missing = sorted(set(embeddings) - set(encoders or {}))
    if missing:
        raise ConfigError(f"n_e2e={n_e2e}: end-to-end timing needs an encoder for every model; missing {missing}")
    n_rows = len(next(iter(embeddings.values()))[0])
    if len(query_texts) != n_rows:
        raise ConfigError(f"n_e2e={n_e2e}: query_texts has {len(query_texts)} texts for {n_rows} query rows; "
                          "they must be aligned")
    return [str(query_texts[i]) for i in lat[:n_e2e]]


def sweep(queries: np.ndarray, docs: np.ndarray, qids: Sequence[str], doc_ids: Sequence[str],
          qrels: pd.DataFrame, specs: Sequence[IndexSpec], **kwargs) -> pd.DataFrame:
    """:func:`sweep_models` for one model's embeddings: rows ``index, param, value_name, value``."""
    rows = sweep_models({"": (queries, docs)}, qids, doc_ids, qrels, specs, **kwargs)
    return rows.drop(columns="model")


# --------------------------------------------------------------------------
# Results file


def tag_rows(frame: pd.DataFrame, model: str, strategy: str, dataset: str, alpha: float = math.nan,
             seed: float = math.nan) -> pd.DataFrame:
    """Prefix ``index, param, value_name, value`` rows with the model's identity and the dataset."""
    out = frame.assign(model=model, strategy=strategy, alpha=float(alpha), seed=float(seed), dataset=dataset)
    return out[COLUMNS]


def name_identity(model: str, strategy: str) -> tuple[float, float]:
    """(alpha, seed) read back from a run name of :func:`lib.models.run_name` (``hybrid_a0.25_s1_L2``,
    ``mono_s0``): for files written before the CSV carried them. NaN for zero-shot and unknown names."""
    if strategy not in registry.trained_names():
        return math.nan, math.nan
    found = re.search(r"(?:_a(\d+(?:\.\d+)?))?_s(\d+)(?:_L\d+)?$", str(model))
    if not found:
        return math.nan, math.nan
    alpha = registry.mono_share(strategy, float(found.group(1) or 0.5))
    return alpha, float(found.group(2))


def identified(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``alpha`` and ``seed`` columns (read from the model names where the file had none)."""
    if {"alpha", "seed"} <= set(rows.columns):
        return rows
    pairs = rows[["model", "strategy"]].drop_duplicates()
    known = {(m, s): name_identity(m, s) for m, s in zip(pairs["model"], pairs["strategy"])}
    ids = [known[(m, s)] for m, s in zip(rows["model"], rows["strategy"])]
    return rows.assign(alpha=[a for a, _ in ids], seed=[s for _, s in ids])


def write_rows(rows: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    """Upsert ``rows`` into the CSV at ``path``: every (model, dataset) present in ``rows`` replaces
    the file's rows for that pair (a file without ``alpha`` / ``seed`` gets them from its model names).
    Written atomically; returns the whole table."""
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ConfigError(f"write_rows: rows lack column(s) {missing}; expected exactly {COLUMNS}")
    path = Path(path)
    old = None
    if path.is_file():
        old = pd.read_csv(path, dtype={"param": str}).fillna({"param": ""})
        if not {"alpha", "seed"} & set(old.columns):
            old = identified(old)[COLUMNS]
    return upsert_csv(path, rows[COLUMNS], keys=["model", "dataset"], old=old)


def efficiency_path(profile: str) -> Path:
    return results_dir(profile) / "efficiency.csv"


# --------------------------------------------------------------------------
# Models and workloads


def find_models(profile: str, backbone: str = "embedded", num_layers: int = 0, models: str = "") -> list:
    """The models to compare, as ``lib.models.ModelSpec`` (same names and fingerprints as metrics.csv).

    ``models=""``: the zero-shot backbone plus every finished run under
    ``results/<profile>/models/`` trained from ``backbone`` cut to
    ``num_layers`` (all seeds of every strategy, every hybrid alpha), in
    display order (strategy, alpha, seed); otherwise a comma-separated list
    of run names and/or ``zero-shot``.
    """
    zero = zero_shot_model(backbone, num_layers)
    if not models.strip():
        runs = [describe_model(str(p)) for p in trained_models(profile) if trained_from(p, backbone, num_layers)]
        return [zero] + sorted(runs, key=lambda r: (registry.order_key(r.strategy), r.alpha, r.seed, r.name))
    by_name = {p.name: p for p in trained_models(profile)}
    out = []
    for name in comma_list(models):
        if name in (ZERO_SHOT, zero.name):
            out.append(zero)
        elif name in by_name:
            out.append(describe_model(str(by_name[name])))
        else:
            raise ConfigError(f"models: {name!r} is neither '{ZERO_SHOT}' nor a finished run under "
                              f"{results_dir(profile) / 'models'} (found: {sorted(by_name) or 'none'})")
    return out


@dataclass
class Workload:
    """A retrieval set to measure a model on, and how."""

    dataset: str  # name in the rows and the embedding cache, e.g. "dureader_demo", "xquad_r"
    rset: object  # lib.data.RetrievalSet (queries, docs, qrels)
    metrics: tuple[str, ...] = DUREADER_METRICS
    families: tuple[str, ...] = FAMILIES
    query_max_length: int = 128
    doc_max_length: int = 256
    max_queries: int = 0  # queries searched in the sweep (0 = all; sampled by item, all languages)
    clustering: bool = False  # measure language clustering of the docs


def evaluation_order(rset):
    """``rset`` with queries and docs in ``lib.evaluation``'s order (docs sorted by language, queries
    with a relevant doc), so that both share the embedding cache of a model and dataset."""
    lay = layout(rset)
    return type(rset)(lay.queries, lay.docs, rset.qrels, getattr(rset, "name", ""))


def query_sample(queries: pd.DataFrame, n: int, seed: int = 0) -> np.ndarray:
    """Row positions of the queries of about ``n / languages`` random items (every language of each
    item kept); all rows when ``n`` is 0 or covers them."""
    if not n or n >= len(queries):
        return np.arange(len(queries))
    n_langs = max(1, queries["lang"].nunique())
    items = np.sort(queries["item_id"].astype(str).unique())
    rng = np.random.default_rng(seed)
    keep = rng.choice(items, size=max(1, min(len(items), n // n_langs)), replace=False)
    return np.flatnonzero(queries["item_id"].astype(str).isin(set(keep)).to_numpy())


def embed_workload(spec, encoder, wl: Workload, profile: str) -> tuple[np.ndarray, np.ndarray]:
    """Query and passage embeddings of a workload, through lib.retrieval's embedding cache
    (``encoder``: an Encoder, or a loader called only on a cache miss)."""
    common = dict(profile=profile, model=spec.name, dataset=wl.dataset, model_fp=spec.fingerprint)
    q = encode_cached(encoder, wl.rset.queries["text"].tolist(), "query",
                      max_length=wl.query_max_length, **common)
    d = encode_cached(encoder, wl.rset.docs["text"].tolist(), "passage",
                      max_length=wl.doc_max_length, **common)
    return q, d


def _tag(frame: pd.DataFrame, identity: dict[str, tuple], dataset: str) -> pd.DataFrame:
    """Rows with a ``model`` column -> :data:`COLUMNS` (strategy, alpha and seed looked up, dataset set)."""
    who = frame["model"].map(identity)
    out = frame.assign(strategy=who.str[0], alpha=who.str[1], seed=who.str[2], dataset=dataset)
    return out[COLUMNS]


def measure_all(specs: Sequence, workloads: Sequence[Workload], out_csv: str | os.PathLike, *, profile: str,
                cost_texts: Sequence[str], threads: int = 2, repeats: int = 3, n_latency: int = 100,
                n_batch: int = 1000, n_e2e: int = 30, n_e2e_points: int = 20, cost_batch_size: int = 32,
                seed: int = 0, specs_kwargs: dict | None = None) -> pd.DataFrame:
    """Every measurement of every model (``lib.models.ModelSpec``), in one process with the models
    interleaved in every timing; returns the rows (:data:`COLUMNS`) and upserts them into ``out_csv``.

    Stages: load every encoder; encoding cost on ``cost_texts`` (tagged
    with the first workload's dataset); per workload: embeddings (through
    the cache), the index sweep, the language clustering of the docs where
    asked; end-to-end latency of the exact index on ``n_e2e`` questions of
    the first workload (encoding and search timed apart) and, at every sweep
    point of every workload, on ``n_e2e_points`` questions; facts (threads, sizes, and seconds: per model for
    loading / embedding / clustering, an equal share of the interleaved
    stages).
    """
    specs = list(specs)
    if not specs or not workloads:
        raise ConfigError("measure_all needs at least one model and one workload")
    threads_used = set_threads(threads)
    identity = {s.name: (s.strategy, float(getattr(s, "alpha", math.nan)), float(getattr(s, "seed", math.nan)))
                for s in specs}
    first = workloads[0]
    facts = {(s.name, w.dataset): {} for s in specs for w in workloads}

    def shared(stage: str, dataset: str, t0: float) -> None:
        for s in specs:
            facts[(s.name, dataset)][stage] = (time.perf_counter() - t0) / len(specs)

    encoders = {}
    for s in tqdm(specs, desc="load models", disable=len(specs) < 2):
        t0 = time.perf_counter()
        encoders[s.name] = s.load()
        facts[(s.name, first.dataset)]["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = [_tag(encoding_costs(encoders, cost_texts, max_length=first.doc_max_length, batch_size=cost_batch_size,
                                 repeats=repeats), identity, first.dataset)]
    shared("encoding_cost_s", first.dataset, t0)
    for wl in workloads:
        embs = {}
        for s in specs:
            t0 = time.perf_counter()
            embs[s.name] = embed_workload(s, encoders[s.name], wl, profile)
            facts[(s.name, wl.dataset)]["embed_s"] = time.perf_counter() - t0
        set_threads(threads)  # encoding may have changed torch's setting
        pick = query_sample(wl.rset.queries, wl.max_queries, seed)
        qids = wl.rset.queries["qid"].astype(str).to_numpy()[pick].tolist()
        n_docs, dim = next(iter(embs.values()))[1].shape
        t0 = time.perf_counter()
        rows = sweep_models({m: (q[pick], d) for m, (q, d) in embs.items()}, qids,
                            wl.rset.docs["doc_id"].astype(str).tolist(), wl.rset.qrels,
                            default_specs(n_docs, dim, wl.families, **(specs_kwargs or {})), metrics=wl.metrics,
                            n_latency=n_latency, n_batch=n_batch, repeats=repeats, seed=seed,
                            encoders=encoders, query_texts=wl.rset.queries["text"].to_numpy()[pick].tolist(),
                            n_e2e=n_e2e_points, query_max_length=wl.query_max_length)
        shared("sweep_s", wl.dataset, t0)
        parts.append(_tag(rows, identity, wl.dataset))
        if wl.clustering:
            for m, (_, d) in embs.items():
                t0 = time.perf_counter()
                stats = language_clustering(d, wl.rset.docs["lang"].tolist(), seed=seed)
                facts[(m, wl.dataset)]["clustering_s"] = time.perf_counter() - t0
                cl = _frame([(m, "clustering", f"nlist={int(stats['nlist'])}", k, v) for k, v in stats.items()],
                            model=True)
                parts.append(_tag(cl, identity, wl.dataset))
        if wl is first and n_e2e:
            t0 = time.perf_counter()
            targets = {}
            for m, (_, d) in embs.items():
                targets[m] = (encoders[m], faiss.IndexFlatIP(dim))
                targets[m][1].add(d)
            texts = wl.rset.queries["text"].sample(min(n_e2e, len(wl.rset.queries)), random_state=seed).tolist()
            parts.append(_tag(e2e_latencies(targets, texts, max_length=wl.query_max_length), identity, wl.dataset))
            shared("e2e_s", wl.dataset, t0)
        n_judged = int(pd.Series(qids).isin(set(wl.rset.qrels["qid"])).sum())
        for s in specs:
            facts[(s.name, wl.dataset)].update({**threads_used, "n_queries": len(pick), "n_docs": n_docs, "dim": dim,
                                                "n_labelled_queries": n_judged})
    parts.append(pd.DataFrame([(m, *identity[m], d, "facts", "", k, float(v)) for (m, d), f in facts.items()
                               for k, v in f.items()], columns=COLUMNS))
    rows = pd.concat(parts, ignore_index=True)
    write_rows(rows, out_csv)
    return rows


def dataset_table(workloads: Sequence[Workload], tokenizer, prefix: str = "passage: ") -> pd.DataFrame:
    """Sizes of each workload and the token lengths of its passages (with the passage ``prefix``)."""
    out = []
    for wl in workloads:
        r = wl.rset
        ids = tokenizer([prefix + t for t in r.docs["text"]], verbose=False)["input_ids"]
        lengths = np.array([len(x) for x in ids])
        p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
        out.append({"dataset": wl.dataset, "queries": len(r.queries), "judged queries": r.qrels["qid"].nunique(),
                     "queries in sweep": len(query_sample(r.queries, wl.max_queries)),
                     "passages": len(r.docs), "languages": r.docs["lang"].nunique(),
                     "relevant / query": len(r.qrels) / max(1, r.qrels["qid"].nunique()),
                     "tokens p50": p50, "tokens p90": p90, "tokens p99": p99,
                     "max_length": wl.doc_max_length, "share truncated": float((lengths > wl.doc_max_length).mean())})
    return pd.DataFrame(out).set_index("dataset")
