"""Evaluation with the paper's protocol on XQuAD-R and MLQA-R (docs/study.md section 2).

For one model and one dataset, questions and candidate sentences are
encoded once (cached, see ``lib.retrieval``) and every question is ranked
against the whole pooled corpus in one pass, which yields its exact ranks:

- ``mono``: questions in X against the candidates of X;
- ``cross``: questions in X against the candidates of Y, for every ordered
  pair X != Y. A question counts in X -> Y only if it has a relevant
  candidate in Y (MLQA-R items lack some languages, so its pairs hold fewer
  questions than its languages do);
- ``multi``: questions in X against the union of all languages
  (``doc_lang = "all"``).

A question's relevant set is the answer sentence of every language version
of its item (the qrels of all questions sharing its ``item_id``).

Outputs (``results/<profile>/``):

- ``metrics.csv``: one row per (model, dataset, setting, query_lang,
  doc_lang, metric) with the mean over that cell's questions; columns
  ``METRIC_COLUMNS`` (the architecture's columns plus ``profile``, which
  :func:`load_metrics` checks). Metrics: ``map`` (full-pool AP),
  ``ndcg_at_10``, ``mrr_at_10``, ``recall_at_1``, ``recall_at_10``,
  ``hit_rate_at_10`` (see ``lib.metrics``) and, in ``multi`` only,
  ``rank_distance`` (mean over questions with >= 2 relevant candidates).
- ``per_query/<model>__<dataset>.parquet``: one row per question and
  setting cell: ``query_id, item_id, setting, query_lang, doc_lang, ap,
  relevant_ranks, relevant_langs`` (ranks sorted, languages aligned), the
  top-k metrics, ``rank_distance`` and ``top10_same_lang`` (multi only:
  how many of the top 10 pooled candidates share the question's language).
- ``ranks/<model>__<dataset>.npz``: the evidence the per-query file is
  computed from, small enough for git (every relevant candidate's rank in
  the pool and in its own language block, and the top-10 same-language
  counts, in :func:`layout` order; about 0.25 MB per model on XQuAD-R).
  The per-query file is a cache: :func:`load_per_query` rebuilds it from
  the rank file and the data when it is missing (a new machine, or a
  results folder from git), so a model's results outlive its weights.
- ``evaluations.json``: the model and data fingerprints of each evaluated
  (model, dataset), so :func:`evaluate_all` skips what is up to date.

Macro averages (``lib.paper_tables.macro_average``): per cell first (mean over its
questions), then the plain mean over cells: over the query languages for
mono and multi, over all ordered pairs X != Y for cross (equal to the mean
over query languages of their mean over candidate languages whenever every
pair is present, as in both datasets).
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lib import machine
from lib import metrics as M
from lib.data import load_lareqa
from lib.data_files import LANGS
from lib.errors import ConfigError, DataError, ModelError
from lib.metric_registry import family, in_setting
from lib.models import ModelSpec, describe_model, safe_name, trained_from, trained_models, zero_shot_name
from lib.paths import atomic_write, results_dir
from lib.results import manifest_path, read_manifest, record, upsert_csv
from lib.retrieval import _sha, block_ranks, encode_cached, resolve_encoder, texts_fingerprint
from lib.settings import comma_list

DATASETS = ("xquad_r", "mlqa_r")
SETTINGS = ("mono", "cross", "multi")
EVAL_VERSION = 1
METRIC_COLUMNS = ["model", "strategy", "alpha", "seed", "layers", "dataset", "setting", "query_lang",
                  "doc_lang", "metric", "value", "n_queries", "profile"]


# --------------------------------------------------------------------------
# Data


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r} is not evaluated with the LAReQA protocol; use one of {DATASETS}")
    return dataset


def _check_frame(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"RetrievalSet.{name} lacks column(s) {missing}; it has {list(frame.columns)}")


def data_fingerprint(data) -> str:
    """Hash of a RetrievalSet's queries, candidates and qrels."""
    q, d, r = data.queries, data.docs, data.qrels
    return _sha(texts_fingerprint(q["qid"].astype(str) + "\t" + q["item_id"].astype(str) + "\t" + q["lang"]
                                  + "\t" + q["text"]),
                texts_fingerprint(d["doc_id"].astype(str) + "\t" + d["lang"] + "\t" + d["text"]),
                texts_fingerprint(r["qid"].astype(str) + "\t" + r["doc_id"].astype(str)))


@dataclass
class Layout:
    """Pool ordered by candidate language, and each question's relevant candidates."""

    queries: pd.DataFrame       # qid, item_id, lang, text (questions with >= 1 relevant)
    docs: pd.DataFrame          # doc_id, lang, text, sorted by language
    langs: list[str]            # candidate languages in pool order
    bounds: np.ndarray          # block b = docs[bounds[b]:bounds[b + 1]]
    relevant: list[np.ndarray]  # pool indices of each question's relevant candidates


def layout(data) -> Layout:
    """Order the pool by language and expand relevance to every language version of an item."""
    _check_frame(data.queries, "queries", ["qid", "item_id", "lang", "text"])
    _check_frame(data.docs, "docs", ["doc_id", "lang", "text"])
    _check_frame(data.qrels, "qrels", ["qid", "doc_id"])
    for frame, name, col in ((data.queries, "queries", "qid"), (data.docs, "docs", "doc_id")):
        if frame[col].duplicated().any():
            dup = frame.loc[frame[col].duplicated(), col].iloc[0]
            raise DataError(f"RetrievalSet.{name}.{col} must be unique; {dup!r} repeats")
    docs = data.docs.sort_values("lang", kind="stable").reset_index(drop=True)
    langs = sorted(docs["lang"].unique())
    sizes = docs.groupby("lang").size()[langs].to_numpy()
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    pos = pd.Series(np.arange(len(docs)), index=docs["doc_id"].to_numpy())
    qrels = data.qrels[["qid", "doc_id"]].drop_duplicates()
    unknown = ~qrels["doc_id"].isin(pos.index)
    if unknown.any():
        raise DataError(f"qrels name {int(unknown.sum())} doc_id(s) missing from the candidates, e.g. "
                        f"{qrels.loc[unknown, 'doc_id'].iloc[0]!r}")
    unknown = ~qrels["qid"].isin(data.queries["qid"])
    if unknown.any():
        raise DataError(f"qrels name {int(unknown.sum())} qid(s) missing from the queries, e.g. "
                        f"{qrels.loc[unknown, 'qid'].iloc[0]!r}")
    item_of = data.queries.set_index("qid")["item_id"]
    by_item = (qrels.assign(item_id=qrels["qid"].map(item_of).to_numpy(), p=pos[qrels["doc_id"]].to_numpy())
               .groupby("item_id")["p"].agg(lambda s: np.unique(s.to_numpy())))
    queries = data.queries[data.queries["item_id"].isin(by_item.index)].reset_index(drop=True)
    relevant = [by_item[i] for i in queries["item_id"]]
    return Layout(queries, docs, langs, bounds, relevant)


def protocol_langs(dataset: str, lay: Layout) -> list[str]:
    """The dataset's languages (all of them even when a subset lacks some), or the data's own
    languages when they are not the dataset's (synthetic test sets)."""
    present = set(lay.langs) | set(lay.queries["lang"])
    official = set(LANGS.get(dataset, ()))
    return sorted(present | official) if official and present <= official else sorted(present)


# --------------------------------------------------------------------------
# Scoring


def _codes(lay: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's language block and each question's (-1: the question's language has no candidates)."""
    doc_code = np.searchsorted(lay.bounds, np.arange(len(lay.docs)), side="right") - 1
    index = {lang: i for i, lang in enumerate(lay.langs)}
    return doc_code, lay.queries["lang"].map(index).fillna(-1).astype(int).to_numpy()


def top_same_lang(lay: Layout, top_ids: np.ndarray | None) -> np.ndarray | None:
    """Per question, how many of its top pooled candidates (``top_ids``) share its language."""
    if top_ids is None:
        return None
    doc_code, q_code = _codes(lay)
    return (doc_code[top_ids] == q_code[:, None]).sum(1)


def per_query_frame(lay: Layout, pool_ranks: list[np.ndarray] | np.ndarray, own_ranks: list[np.ndarray] | np.ndarray,
                    top_ids: np.ndarray | None = None, *, top_same: np.ndarray | None = None) -> pd.DataFrame:
    """One row per question and setting cell with its sorted relevant ranks and metrics.

    Works on flat arrays: every (question, relevant candidate) pair is one
    entry; a multi row groups a question's entries, a mono / cross row the
    entries of one candidate language. The ranks come per question (lists
    aligned with ``lay.relevant``) or flat (concatenated, as a rank file
    keeps them); the top-10 language counts as ``top_ids`` or ready made
    (``top_same``, :func:`top_same_lang`).
    """
    langs = np.asarray(lay.langs, dtype=object)
    doc_code, q_code = _codes(lay)
    lengths = np.fromiter((len(r) for r in lay.relevant), dtype=np.int64, count=len(lay.relevant))
    query = np.repeat(np.arange(len(lengths)), lengths)
    code = doc_code[np.concatenate(lay.relevant)]
    pool, own = (np.asarray(r, dtype=np.int64) if isinstance(r, np.ndarray) else np.concatenate(r)
                 for r in (pool_ranks, own_ranks))
    if top_same is None:
        top_same = top_same_lang(lay, top_ids)

    # multi: all of a question's entries, by pool rank
    o = np.lexsort((pool, query))
    multi = {"q": np.arange(len(lengths)), "lengths": lengths, "ranks": pool[o], "codes": code[o],
             "doc_lang": np.full(len(lengths), "all", dtype=object)}
    # mono / cross: entries of one (question, candidate language), by own-block rank
    key = query * len(langs) + code
    o = np.lexsort((own, key))
    keys, cell_lengths = np.unique(key[o], return_counts=True)
    cells = {"q": keys // len(langs), "lengths": cell_lengths, "ranks": own[o], "codes": code[o],
             "doc_lang": langs[keys % len(langs)]}
    cells["setting"] = np.where(keys % len(langs) == q_code[cells["q"]], "mono", "cross")
    multi["setting"] = "multi"
    parts = []
    for g in (multi, cells):
        M.check_flat(g["ranks"], g["lengths"])
        splits = np.cumsum(g["lengths"])[:-1]
        q, is_multi = g["q"], g is multi
        part = pd.DataFrame({
            "query_id": lay.queries["qid"].to_numpy()[q], "item_id": lay.queries["item_id"].to_numpy()[q],
            "setting": g["setting"], "query_lang": lay.queries["lang"].to_numpy()[q], "doc_lang": g["doc_lang"],
            "ap": M.average_precisions_flat(g["ranks"], g["lengths"]),
            "relevant_ranks": np.split(g["ranks"], splits),
            "relevant_langs": [list(x) for x in np.split(langs[g["codes"]], splits)],
        })
        for name, values in M.topk_metrics((g["ranks"], g["lengths"])).items():
            part[name] = values
        part["rank_distance"] = M.rank_distances_flat(g["ranks"], g["lengths"]) if is_multi else np.nan
        part["top10_same_lang"] = np.nan
        if is_multi and top_same is not None:
            part["top10_same_lang"] = np.asarray(top_same).astype(float)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def aggregate(per_query: pd.DataFrame, langs: Sequence[str]) -> pd.DataFrame:
    """Metric rows (setting, query_lang, doc_lang, metric, value, n_queries) for every cell.

    Cells span ``langs`` (plus any question language) on both sides. Every
    cell of the protocol gets a row, also one no question reaches (value
    NaN, n_queries 0), so a subset still has 11 / 110 / 11 cells on XQuAD-R
    and 7 / 42 / 7 on MLQA-R.
    """
    langs = sorted(set(langs) | set(per_query["query_lang"]))
    cells = ([("mono", x, x) for x in langs] + [("cross", x, y) for x in langs for y in langs if y != x]
             + [("multi", x, "all") for x in langs])
    metrics = family("lareqa")  # map (the per-query ap), the top-k metrics, rank_distance (multi only)
    grouped = per_query.rename(columns={"ap": "map"}).groupby(["setting", "query_lang", "doc_lang"])
    means = grouped[list(metrics)].mean()
    counts = grouped.size()
    rd_counts = grouped["rank_distance"].count()
    rows = []
    for cell in cells:
        present = cell in counts.index
        n = int(counts[cell]) if present else 0
        for metric in (m for m in metrics if in_setting(m, cell[0])):
            value = float(means.loc[cell, metric]) if present else math.nan
            nq = int(rd_counts[cell]) if (present and metric == "rank_distance") else n
            rows.append((*cell, metric, value, nq))
    return pd.DataFrame(rows, columns=["setting", "query_lang", "doc_lang", "metric", "value", "n_queries"])


# --------------------------------------------------------------------------
# Files


def metrics_path(profile: str) -> Path:
    return results_dir(profile) / "metrics.csv"


def per_query_path(profile: str, model: str, dataset: str) -> Path:
    return results_dir(profile) / "per_query" / f"{safe_name(model)}__{dataset}.parquet"


def ranks_path(profile: str, model: str, dataset: str) -> Path:
    return results_dir(profile) / "ranks" / f"{safe_name(model)}__{dataset}.npz"


def _rank_dtype(values: np.ndarray):
    return np.uint16 if values.size == 0 or int(values.max()) < 2 ** 16 else np.uint32


def write_ranks(path: Path, lay: Layout, pool_ranks, own_ranks, top_same: np.ndarray | None,
                data_fp: str, model_fp: str) -> None:
    """The rank file of one evaluation (see the module docstring), written atomically."""
    pool, own = np.concatenate(pool_ranks), np.concatenate(own_ranks)
    arrays = {"pool": pool.astype(_rank_dtype(pool)), "own": own.astype(_rank_dtype(own)),
              "n_queries": np.int64(len(lay.queries)), "data_fingerprint": np.str_(data_fp),
              "model_fingerprint": np.str_(model_fp)}
    if top_same is not None:
        arrays["top_same"] = np.asarray(top_same, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def rebuild_per_query(profile: str, model: str, dataset: str) -> Path:
    """Recompute ``per_query/<model>__<dataset>.parquet`` from its rank file and the data the manifest
    records (same max_items); DataError when the data changed since (its fingerprint differs)."""
    source = ranks_path(profile, model, dataset)
    entry = read_manifest(profile)["entries"].get(f"{model}__{dataset}", {})
    with np.load(source) as f:
        ranks = {k: f[k] for k in f.files}
    data = load_lareqa(dataset, max_items=int(entry.get("max_items", 0)))
    data_fp = data_fingerprint(data)
    if str(ranks["data_fingerprint"]) != data_fp:
        raise DataError(f"{source} was computed on other {dataset} data than the data folder holds now (data "
                        f"fingerprint {str(ranks['data_fingerprint'])[:12]}, now {data_fp[:12]}): evaluate "
                        f"{model!r} again (notebooks/04_evaluation.ipynb)")
    lay = layout(data)
    frame = per_query_frame(lay, ranks["pool"], ranks["own"], top_same=ranks.get("top_same"))
    path = per_query_path(profile, model, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def has_evaluation_files(profile: str, model: str, dataset: str) -> bool:
    """Whether the per-query file exists or can be rebuilt from a rank file."""
    return per_query_path(profile, model, dataset).is_file() or ranks_path(profile, model, dataset).is_file()


def check_max_items(profile: str, max_items: int, datasets: Sequence[str] = DATASETS) -> pd.DataFrame:
    """The evaluations recorded for ``datasets``; error if one used another ``max_items``
    (a notebook reading results must read those of the subset it was asked about)."""
    entries = read_manifest(profile)["entries"]
    frame = pd.DataFrame([{"model": k.rsplit("__", 1)[0], "dataset": k.rsplit("__", 1)[1], **v}
                          for k, v in entries.items()])
    if frame.empty or not frame["dataset"].isin(list(datasets)).any():
        raise ConfigError(f"no evaluation of {list(datasets)} recorded in {manifest_path(profile)}: run "
                          "notebooks/04_evaluation.ipynb for this profile first")
    frame = frame[frame["dataset"].isin(list(datasets))]
    stale = frame[frame["max_items"] != int(max_items)]
    if len(stale):
        used = sorted(set(stale["max_items"]))
        raise ConfigError(f"parameter max_items={max_items} does not match the evaluations recorded in "
                          f"{manifest_path(profile)}: {len(stale)} of them used max_items={used} (e.g. "
                          f"{stale['model'].iloc[0]} on {stale['dataset'].iloc[0]}). Set the notebook parameter "
                          f"max_items={used[0]} (or leave it at its default and set profile to the profile that "
                          f"wrote these results), or rerun notebooks/04_evaluation.ipynb with max_items={max_items}")
    return frame


def upsert_metrics(profile: str, rows: pd.DataFrame) -> Path:
    """Write ``rows`` into ``results/<profile>/metrics.csv``, replacing the rows of the
    same (model, dataset) and keeping every other row; atomic."""
    missing = [c for c in METRIC_COLUMNS if c not in rows.columns and c != "profile"]
    if missing:
        raise ConfigError(f"upsert_metrics: rows lack column(s) {missing}; columns are {METRIC_COLUMNS}")
    rows = rows.assign(profile=profile)[METRIC_COLUMNS]
    path = metrics_path(profile)
    upsert_csv(path, rows, keys=["model", "dataset"], old=load_metrics(profile) if path.is_file() else None,
               sort_by=["model", "dataset", "setting", "metric", "query_lang", "doc_lang"])
    return path


def load_metrics(profile: str, path: str | Path | None = None) -> pd.DataFrame:
    """``metrics.csv`` of ``profile`` (or the file at ``path``), checked to belong to it.

    Every row carries the profile that wrote it; a file holding another
    profile's rows is an error, not a silent mix.
    """
    path = Path(path) if path is not None else metrics_path(profile)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run notebooks/04_evaluation.ipynb (or "
                          f"lib.evaluation.evaluate_all({profile!r})) first")
    frame = pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"])
    missing = [c for c in METRIC_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; write it with lib.evaluation.upsert_metrics")
    other = sorted(set(frame["profile"].dropna().astype(str)) - {profile})
    if other:
        raise ConfigError(f"{path} holds results of profile(s) {other}, not {profile!r}: results files are not "
                          f"shared between profiles; rerun the evaluation with profile={profile!r}")
    for col in ("alpha", "seed", "layers", "value"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["n_queries"] = pd.to_numeric(frame["n_queries"], errors="coerce").fillna(0).astype(int)
    return frame


def load_per_query(profile: str, model: str, dataset: str) -> pd.DataFrame:
    """``per_query/<model>__<dataset>.parquet`` (read once per file version, returned as a copy)."""
    path = per_query_path(profile, model, dataset)
    if not path.is_file():
        if not ranks_path(profile, model, dataset).is_file():
            raise ConfigError(f"{path} does not exist: evaluate model {model!r} on {dataset} first "
                              "(lib.evaluation.evaluate_model / notebooks/04_evaluation.ipynb)")
        rebuild_per_query(profile, model, dataset)
    st = path.stat()
    return _read_parquet(str(path), st.st_mtime_ns, st.st_size).copy()


@functools.lru_cache(maxsize=64)
def _read_parquet(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    return pd.read_parquet(path)


# --------------------------------------------------------------------------
# Entry points


def evaluate_model(model, model_name: str | None = None, dataset: str = "xquad_r", profile: str = "default", *,
                   num_layers: int = 0, max_items: int = 0, data=None, batch_size: int = 64,
                   max_length: int = 128, write: bool = True, progress: bool | None = None,
                   threads: int | None = None) -> pd.DataFrame:
    """Evaluate one model on one LAReQA dataset; return (and by default write) its metric rows.

    ``model``: a trained run folder, an ``Encoder.save`` folder, ``"embedded"``
    / a hub id (zero-shot, truncated to ``num_layers``), an ``Encoder``
    (then ``model_name`` is required) or a :class:`ModelSpec`. ``data`` overrides
    ``lib.data.load_lareqa(dataset, max_items=max_items)``.
    """
    check_dataset(dataset)
    t_start = time.perf_counter()
    spec = model if isinstance(model, ModelSpec) else describe_model(model, model_name, num_layers)
    if data is None:
        data = load_lareqa(dataset, max_items=max_items)
    lay = layout(data)
    if len(lay.queries) == 0:
        raise DataError(f"{dataset}: no question has a relevant candidate; check the data (max_items={max_items})")
    loaded: dict[str, object] = {}

    def encoder():
        if "enc" not in loaded:
            loaded["enc"] = spec.load()
        return loaded["enc"]
    common = dict(profile=profile, model=spec.name, dataset=dataset, model_fp=spec.fingerprint,
                  max_length=max_length, batch_size=batch_size, progress=progress)
    t_encode = time.perf_counter()
    q_emb = encode_cached(encoder, lay.queries["text"].tolist(), "query", **common)
    d_emb = encode_cached(encoder, lay.docs["text"].tolist(), "passage", **common)
    encode_seconds = time.perf_counter() - t_encode
    pool_ranks, own_ranks, top_ids = block_ranks(q_emb, d_emb, lay.relevant, lay.bounds, top_k=10,
                                                 threads=threads)
    top_same = top_same_lang(lay, top_ids)
    per_query = per_query_frame(lay, pool_ranks, own_ranks, top_same=top_same)
    layers = spec.layers
    if "enc" in loaded:
        layers = float(loaded["enc"].model.config.num_hidden_layers)
    rows = aggregate(per_query, protocol_langs(dataset, lay)).assign(
        model=spec.name, strategy=spec.strategy, alpha=spec.alpha, seed=spec.seed, layers=layers,
        dataset=dataset, profile=profile)[METRIC_COLUMNS]
    if write:
        data_fp = data_fingerprint(data)
        write_ranks(ranks_path(profile, spec.name, dataset), lay, pool_ranks, own_ranks, top_same, data_fp,
                    spec.fingerprint)
        path = per_query_path(profile, spec.name, dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            per_query.to_parquet(tmp, index=False)
        upsert_metrics(profile, rows)
        record(profile, f"{spec.name}__{dataset}", {
            "model_fingerprint": spec.fingerprint, "data_fingerprint": data_fp,
            "eval_version": EVAL_VERSION, "max_items": int(max_items), "max_length": int(max_length),
            "n_queries": int(len(lay.queries)), "n_candidates": int(len(lay.docs)),
            # where the time went and on what machine (encoding is near 0 s when the embeddings were cached)
            "seconds": round(time.perf_counter() - t_start, 2), "encode_seconds": round(encode_seconds, 2),
            "encoded": "enc" in loaded, **machine.describe()})
    return rows


TIME_COLUMNS = ["model", "dataset", "seconds", "encode_seconds", "encoded", "cpu_model", "precision",
                "n_queries", "n_candidates"]


def evaluation_times(profile: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per recorded LAReQA evaluation of ``profile`` (``evaluations.json``): wall seconds, the
    encoding part, whether the model was encoded (not read from the embedding cache), the machine.
    Evaluations recorded before times were kept have no seconds."""
    rows = []
    for key, entry in read_manifest(profile)["entries"].items():
        model, _, dataset = key.rpartition("__")
        if dataset not in DATASETS or (models is not None and model not in models):
            continue
        rows.append({"model": model, "dataset": dataset, **{k: entry.get(k) for k in TIME_COLUMNS[2:]}})
    return pd.DataFrame(rows, columns=TIME_COLUMNS)


def up_to_date(profile: str, spec: ModelSpec, dataset: str, data_fp: str, manifest: dict) -> bool:
    """Whether ``evaluations.json``'s entries (``manifest``) record this model and data fingerprint at this
    evaluation version, and the per-query file exists (or its rank file, from which it is rebuilt): then the
    evaluation need not run again."""
    entry = manifest.get(f"{spec.name}__{dataset}", {})
    return (entry.get("model_fingerprint") == spec.fingerprint and entry.get("data_fingerprint") == data_fp
            and entry.get("eval_version") == EVAL_VERSION and has_evaluation_files(profile, spec.name, dataset))


def _as_list(value, name: str) -> list[str]:
    items = comma_list(value)
    if not items:
        raise ConfigError(f"{name} is empty; give a comma-separated string or a list")
    return items


def evaluate_all(profile: str, backbone: str = "embedded", num_layers: int = 0,
                 datasets: str | Sequence[str] = DATASETS, max_items: int = 0,
                 models: Sequence[str] | None = None, zero_shot: bool = True, force: bool = False,
                 progress: bool | None = None) -> pd.DataFrame:
    """Evaluate the zero-shot backbone and every trained model of the profile on ``datasets``.

    ``models``: run names under ``results/<profile>/models/`` (default: every
    run trained from ``backbone`` cut to ``num_layers``, per its train_config).
    A (model, dataset) whose model and data fingerprints match
    ``evaluations.json`` (and whose files exist) is skipped unless ``force``.
    Returns :func:`load_metrics`.
    """
    from tqdm.auto import tqdm

    datasets = [check_dataset(d) for d in _as_list(datasets, "datasets")]
    runs = trained_models(profile)
    if models is None:  # this backbone at this depth only (notebook 07 trains other depths)
        runs = [p for p in runs if trained_from(p, backbone, num_layers)]
    else:
        wanted = _as_list(models, "models")
        names = {p.name for p in runs}
        unknown = [m for m in wanted if m not in names]
        if unknown:
            raise ModelError(f"model(s) {unknown} not found under {results_dir(profile) / 'models'}; "
                             f"trained there: {sorted(names)}")
        runs = [p for p in runs if p.name in wanted]
    targets: list[tuple[object, str | None]] = [(str(p), None) for p in runs]
    if zero_shot:
        targets.insert(0, (backbone, zero_shot_name(backbone, num_layers)))
    manifest = read_manifest(profile)["entries"]
    data = {d: load_lareqa(d, max_items=max_items) for d in datasets}
    data_fps = {d: data_fingerprint(s) for d, s in data.items()}
    for target, name in tqdm(targets, desc="evaluate", disable=progress is False):
        spec = describe_model(target, name, num_layers if name else 0)
        spec.load = resolve_encoder(spec.load)  # one load serves every dataset
        for dataset in datasets:
            if force or not up_to_date(profile, spec, dataset, data_fps[dataset], manifest):
                evaluate_model(spec, dataset=dataset, profile=profile, max_items=max_items, data=data[dataset],
                               progress=progress)
    return load_metrics(profile)
