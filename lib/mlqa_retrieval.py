"""MTEB's MLQARetrieval computed locally: the 49 subsets, trec_eval's ranking, the @10 metrics, the files.

Local MLQARetrieval (``dataset = "mlqa_retrieval"``) follows mteb's task:

- 49 subsets, one per (question language X, context language Y) over the 7
  MLQA languages; split ``validation`` = MLQA v1 dev, file
  ``dev-context-Y-question-X.json``. mteb names a subset
  ``"<Y>-<X>"`` with ISO 639-3 codes, *corpus language first*: questions in
  Arabic against English paragraphs is ``"eng-ara"`` (checked against the
  query/document counts and lengths in mteb's descriptive statistics).
- Queries are the distinct question texts of the file; the corpus is the
  distinct paragraphs (``context``) of the *same file* (not every paragraph
  of language Y); a question's relevant documents are the paragraphs it was
  asked about (relevance 1). Duplicate texts are merged as mteb does
  (:func:`mteb_view`), so the data layer's ids do not matter.
- Score: cosine similarity; main score nDCG@10 as pytrec_eval's
  ``ndcg_cut_10`` (linear gain, log2 discount, ideal from the qrels), plus
  MRR@10 and Recall@10. mteb keeps a top-k run (k = 100 or 1000 by version)
  before pytrec_eval; @10 metrics do not depend on that depth. Here the
  exact rank of each relevant paragraph in the subset's whole corpus is
  computed and the @10 metrics come from ranx (``lib.metrics.topk_metrics``).
- Ties: trec_eval (hence pytrec_eval and mteb since its tie fixes) orders
  equal scores by document id, descending; so does :func:`trec_ranks`, on
  this project's document ids (mteb's ids differ, so an exact float tie
  could resolve differently; ``n_tied`` counts the queries concerned).
- No self-retrieval handling is needed: query and document ids never
  coincide (mteb's ``ignore_identical_ids`` is off by default anyway).

Every language's questions and paragraphs are encoded once per model and
shared by the subsets. Rows in ``metrics.csv``: one per subset and metric
(``setting = "subset"``), plus macro means over subsets (``setting`` =
``"same"``: the 7 X == Y subsets, ``"cross"``: the 42 others, ``"all"``:
the 49; ``query_lang`` and ``doc_lang`` empty, ``n_queries`` summed).
Per-query values go to ``per_query/<model>__mlqa_retrieval.parquet``, which
(unlike the LAReQA per-query caches, rebuilt from rank files) is itself kept
in git with the default and budget results, so notebook 07's statistics
outlive the weights (see ``lib.models``).

The ``mteb`` package runs the same task through :mod:`lib.mteb_eval`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from lib.data import load_mlqa_retrieval
from lib.data_files import LANGS as DATASET_LANGS
from lib.errors import ConfigError, DataError
from lib.evaluation import METRIC_COLUMNS as EVALUATION_COLUMNS, metrics_path, per_query_path, upsert_metrics
from lib.metric_registry import ranx_names
from lib.metrics import average_precisions, topk_metrics
from lib.paths import atomic_write
from lib.results import read_manifest, record

DATASET = "mlqa_retrieval"
SPLIT = "validation"
LANGS = DATASET_LANGS[DATASET]
ISO3 = {"ar": "ara", "de": "deu", "en": "eng", "es": "spa", "hi": "hin", "vi": "vie", "zh": "zho"}
METRICS = ranx_names(DATASET)  # csv -> ranx (lib.metric_registry)
MAIN_METRIC = "ndcg_at_10"
SUMMARY_SETTINGS = ("same", "cross", "all")
METRIC_COLUMNS = [c for c in EVALUATION_COLUMNS if c != "profile"]  # upsert_metrics adds "profile"

# mteb's descriptive statistics of MLQARetrieval, split validation: (queries, documents) per
# (question language, context language). They equal the distinct questions / paragraphs of each
# dev file, which is how check_subsets recognises a complete, mteb-shaped set.
_COUNTS = """
ar: ar 517 439, de 207 179, en 517 438, es 161 145, hi 186 152, vi 163 152, zh 188 161
de: ar 207 170, de 512 456, en 512 447, es 196 184, hi 163 142, vi 182 161, zh 190 164
en: ar 517 439, de 512 456, en 1148 978, es 500 454, hi 507 425, vi 511 451, zh 504 443
es: ar 161 140, de 196 181, en 500 439, es 500 454, hi 187 157, vi 189 166, zh 161 148
hi: ar 186 155, de 163 146, en 507 423, es 187 165, hi 507 425, vi 177 157, zh 189 163
vi: ar 163 148, de 182 163, en 511 452, es 189 176, hi 177 157, vi 511 451, zh 184 168
zh: ar 188 155, de 190 167, en 504 430, es 161 150, hi 189 162, vi 184 166, zh 504 443
"""


def _parse_counts(text: str) -> dict[tuple[str, str], tuple[int, int]]:
    out = {}
    for line in text.strip().splitlines():
        q_lang, rest = line.split(":")
        for cell in rest.split(","):
            c_lang, n_q, n_d = cell.split()
            out[(q_lang.strip(), c_lang)] = (int(n_q), int(n_d))
    return out


MLQA_VALIDATION_COUNTS = _parse_counts(_COUNTS)  # (query_lang, doc_lang) -> (n_queries, n_docs)


# --------------------------------------------------------------------------
# Subsets


def mteb_subset_name(query_lang: str, doc_lang: str) -> str:
    """mteb's ``hf_subset`` of MLQARetrieval: corpus language first, e.g. ('ar', 'en') -> 'eng-ara'."""
    for lang in (query_lang, doc_lang):
        if lang not in ISO3:
            raise ConfigError(f"MLQA language {lang!r}: use one of {', '.join(LANGS)}")
    return f"{ISO3[doc_lang]}-{ISO3[query_lang]}"


def parse_subset_name(name: str) -> tuple[str, str]:
    """Inverse of :func:`mteb_subset_name`: 'eng-ara' -> ('ar', 'en') = (query_lang, doc_lang)."""
    back = {v: k for k, v in ISO3.items()}
    parts = name.split("-")
    if len(parts) != 2 or parts[0] not in back or parts[1] not in back:
        raise ConfigError(f"MLQARetrieval subset {name!r}: expected '<corpus iso3>-<query iso3>' "
                          f"with codes {sorted(back)}")
    return back[parts[1]], back[parts[0]]


def mteb_view(rset) -> tuple[list[str], list[str], list[str], list[list[int]]]:
    """A subset as mteb sees it: distinct query texts, distinct document texts, qrels by text.

    Returns ``(query_texts, query_item_ids, doc_texts, relevant)`` where
    ``relevant[i]`` lists the document positions relevant to query ``i``.
    Queries with the same text are merged (their relevant sets united) and
    documents with the same text are one document, as mteb builds the task.
    """
    q, d, qrels = rset.queries, rset.docs, rset.qrels
    for frame, cols, what in ((q, ("qid", "text"), "queries"), (d, ("doc_id", "text"), "docs"),
                              (qrels, ("qid", "doc_id"), "qrels")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataError(f"MLQARetrieval subset: {what} lacks column(s) {missing}; expected a "
                            "lib.data.RetrievalSet")
    doc_texts = list(dict.fromkeys(d["text"].astype(str)))
    doc_pos = {t: i for i, t in enumerate(doc_texts)}
    doc_of_id = dict(zip(d["doc_id"].astype(str), d["text"].astype(str)))
    q_texts = list(dict.fromkeys(q["text"].astype(str)))
    q_pos = {t: i for i, t in enumerate(q_texts)}
    text_of_qid = dict(zip(q["qid"].astype(str), q["text"].astype(str)))
    items = {}
    if "item_id" in q.columns:
        for t, item in zip(q["text"].astype(str), q["item_id"].astype(str)):
            items.setdefault(t, item)
    relevant: list[set[int]] = [set() for _ in q_texts]
    for qid, doc_id in zip(qrels["qid"].astype(str), qrels["doc_id"].astype(str)):
        if qid not in text_of_qid or doc_id not in doc_of_id:
            raise DataError(f"MLQARetrieval subset: qrels pair ({qid!r}, {doc_id!r}) names an unknown "
                            "query or document")
        relevant[q_pos[text_of_qid[qid]]].add(doc_pos[doc_of_id[doc_id]])
    keep = [i for i, r in enumerate(relevant) if r]  # pytrec_eval scores only queries with qrels
    return ([q_texts[i] for i in keep], [items.get(q_texts[i], "") for i in keep], doc_texts,
            [sorted(relevant[i]) for i in keep])


def check_subsets(subsets: dict, complete: bool = True) -> None:
    """Raise DataError unless ``subsets`` are the 49 (query_lang, doc_lang) MLQARetrieval subsets.

    With ``complete`` (no ``max_items`` cap) each subset's distinct queries
    and documents must also match mteb's published validation counts.
    """
    expected = set(MLQA_VALIDATION_COUNTS)
    got = set(subsets)
    if got != expected:
        raise DataError(f"MLQARetrieval needs the 49 (query_lang, doc_lang) subsets; missing "
                        f"{sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}. "
                        "Load them with lib.data.load_mlqa_retrieval()")
    if not complete:
        return
    wrong = {}
    for key, rset in subsets.items():
        q_texts, _, d_texts, _ = mteb_view(rset)
        if (len(q_texts), len(d_texts)) != MLQA_VALIDATION_COUNTS[key]:
            wrong[key] = ((len(q_texts), len(d_texts)), MLQA_VALIDATION_COUNTS[key])
    if wrong:
        raise DataError(f"MLQARetrieval subsets differ from mteb's (queries, documents) counts "
                        f"(got, mteb): {dict(list(wrong.items())[:5])}. The corpus of subset (X, Y) must be "
                        "the distinct paragraphs of dev-context-Y-question-X.json; check the data mirror "
                        "(sha256sum -c SHA256SUMS) and lib.data.load_mlqa_retrieval")


# --------------------------------------------------------------------------
# Ranking and metrics


def trec_ranks(scores: np.ndarray, relevant: Sequence[Sequence[int]], doc_ids: Sequence[str]
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """1-based rank of every relevant document, ranking by score then doc id, both descending.

    That is trec_eval's order (so pytrec_eval's and mteb's). ``scores`` is
    (n_queries, n_docs). Returns the ranks (aligned with ``relevant[i]``)
    and, per query, whether a relevant document ties exactly with another.
    """
    scores = np.asarray(scores)
    n, m = scores.shape
    if len(relevant) != n or len(doc_ids) != m:
        raise ConfigError(f"trec_ranks: {len(relevant)} relevant lists / {len(doc_ids)} doc ids for "
                          f"scores of shape {scores.shape}")
    order = sorted(range(m), key=lambda j: doc_ids[j], reverse=True)
    first = np.empty(m, dtype=np.int64)  # position in the descending-id order: smaller ranks first on ties
    first[order] = np.arange(m)
    ranks, tied = [], np.zeros(n, dtype=bool)
    for i, rel in enumerate(relevant):
        rel = np.asarray(rel, dtype=np.int64)
        row = scores[i]
        s = row[rel][:, None]
        higher = (row[None, :] > s).sum(1)
        equal = row[None, :] == s
        before = (equal & (first[None, :] < first[rel][:, None])).sum(1)
        ranks.append(1 + higher + before)
        tied[i] = bool((equal.sum(1) > 1).any())
    return ranks, tied


def tie_rank_bounds(scores: np.ndarray, relevant: Sequence[Sequence[int]], tol: float
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Best and worst 1-based ranks of every relevant document when near-tied candidates may come in any order.

    Per query, the candidates sorted by score fall into groups of neighbours
    at most ``tol`` apart (a chain: a, b, c form one group when b - a and
    c - b are both <= ``tol``). Two correct implementations that sum the same
    dot product in another order can order a group differently, and nothing
    else. Best case: every group puts its relevant documents first; worst
    case: last. Ranks are aligned with ``relevant[i]`` as in
    :func:`trec_ranks`.
    """
    scores = np.asarray(scores)
    if len(relevant) != scores.shape[0]:
        raise ConfigError(f"tie_rank_bounds: {len(relevant)} relevant lists for scores of shape {scores.shape}")
    if tol < 0:
        raise ConfigError(f"tie_rank_bounds: tol={tol} must be >= 0")
    best, worst = [], []
    for i, rel in enumerate(relevant):
        rel = np.asarray(rel, dtype=np.int64)
        desc = -np.sort(-scores[i])
        group = np.concatenate([[0], np.cumsum(desc[:-1] - desc[1:] > tol)])  # group id per sorted position
        start = np.searchsorted(group, np.arange(group[-1] + 1))  # first position of each group
        size = np.diff(np.append(start, len(desc)))
        # a relevant document's group: the group of any sorted position holding its score
        pos = np.searchsorted(-desc, -scores[i][rel], side="left")
        g = group[pos]
        b, w = np.empty(len(rel), dtype=np.int64), np.empty(len(rel), dtype=np.int64)
        for gid in np.unique(g):
            members = np.flatnonzero(g == gid)
            k = np.arange(1, len(members) + 1)
            b[members] = start[gid] + k
            w[members] = start[gid] + size[gid] - len(members) + k
        best.append(b)
        worst.append(w)
    return best, worst


def tie_metric_range(scores: np.ndarray, relevant: Sequence[Sequence[int]], tol: float,
                     metric: str = MAIN_METRIC) -> tuple[float, float]:
    """Lowest and highest mean ``metric`` (a rank-monotone @k metric such as nDCG@10) over the orderings of
    near-tied candidates that :func:`tie_rank_bounds` allows."""
    best, worst = tie_rank_bounds(scores, relevant, tol)
    high = float(np.mean(subset_metrics(best)[metric]))
    low = float(np.mean(subset_metrics(worst)[metric]))
    return low, high


def subset_metrics(ranks: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Per-query nDCG@10, MRR@10, Recall@10 (ranx) and full-corpus AP from relevant ranks."""
    values = topk_metrics([np.asarray(r) for r in ranks], METRICS)
    values["ap"] = average_precisions(ranks)
    return values


# --------------------------------------------------------------------------
# Encoding and evaluation


@dataclass
class MlqaResult:
    """Local MLQARetrieval scores of one model."""

    subsets: pd.DataFrame  # query_lang, doc_lang, subset, n_queries, n_docs, n_tied, <metrics>
    per_query: pd.DataFrame  # query_id, item_id, setting, query_lang, doc_lang, ap, relevant_ranks, <metrics>
    encode_seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        return summarize(self.subsets)

def views(subsets: dict) -> dict:
    """Each subset's :func:`mteb_view`, in (query_lang, doc_lang) order."""
    return {key: mteb_view(rset) for key, rset in sorted(subsets.items())}


def doc_ids(doc_lang: str, n: int) -> list[str]:
    """The document ids of a subset's corpus (trec_eval breaks score ties by id; the local mteb task uses them too)."""
    return [f"{doc_lang}-{i:06d}" for i in range(n)]


def encode_languages(encoder, views: dict, *, batch_size: int = 32, max_length: int = 512,
                     progress: bool | None = None) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Embed each language's distinct questions and paragraphs once: (role, lang) -> {text: vector}."""
    texts: dict[tuple[str, str], dict[str, None]] = {}
    for (q_lang, d_lang), (q_texts, _, d_texts, _) in views.items():
        texts.setdefault(("query", q_lang), {}).update(dict.fromkeys(q_texts))
        texts.setdefault(("passage", d_lang), {}).update(dict.fromkeys(d_texts))
    out = {}
    for (role, lang), unique in sorted(texts.items()):
        items = list(unique)
        emb = encoder.encode(items, role, batch_size=batch_size, max_length=max_length, progress=progress)
        out[(role, lang)] = dict(zip(items, emb))
    return out


def evaluate_mlqa_retrieval(encoder, subsets: dict | None = None, *, max_items: int = 0, batch_size: int = 32,
                            max_length: int = 512, progress: bool | None = None) -> MlqaResult:
    """Score ``encoder`` on the 49 MLQARetrieval subsets (validation split).

    ``subsets`` defaults to ``lib.data.load_mlqa_retrieval(max_items)``.
    ``max_length`` caps tokens per text (512 = the e5 models' limit that
    mteb applies through sentence-transformers; MLQA paragraphs average
    about 200 tokens, 5-10 % exceed 512).
    """
    if subsets is None:
        subsets = load_mlqa_retrieval(max_items=max_items)
    check_subsets(subsets, complete=not max_items)
    by_subset = views(subsets)
    t0 = time.perf_counter()
    emb = encode_languages(encoder, by_subset, batch_size=batch_size, max_length=max_length, progress=progress)
    encode_seconds = time.perf_counter() - t0
    rows, per_query = [], []
    for (q_lang, d_lang), (q_texts, items, d_texts, relevant) in by_subset.items():
        q = np.stack([emb[("query", q_lang)][t] for t in q_texts]).astype(np.float32)
        d = np.stack([emb[("passage", d_lang)][t] for t in d_texts]).astype(np.float32)
        ranks, tied = trec_ranks(q @ d.T, relevant, doc_ids(d_lang, len(d_texts)))
        values = subset_metrics(ranks)
        name = mteb_subset_name(q_lang, d_lang)
        rows.append({"query_lang": q_lang, "doc_lang": d_lang, "subset": name, "n_queries": len(q_texts),
                     "n_docs": len(d_texts), "n_tied": int(tied.sum()),
                     **{m: float(np.mean(values[m])) for m in METRICS}})
        per_query.append(pd.DataFrame({
            "query_id": [f"{name}/{i}" for i in range(len(q_texts))], "item_id": items,
            "setting": "subset", "query_lang": q_lang, "doc_lang": d_lang, "ap": values["ap"],
            "relevant_ranks": [np.sort(r).astype(np.int64).tolist() for r in ranks],
            **{m: values[m] for m in METRICS}}))
    info = {"max_length": max_length, "batch_size": batch_size, "max_items": max_items}
    return MlqaResult(pd.DataFrame(rows), pd.concat(per_query, ignore_index=True), encode_seconds, info)


def summarize(subset_table: pd.DataFrame) -> pd.DataFrame:
    """Macro means over subsets: setting same (X == Y), cross (X != Y), all; one row per metric."""
    same = subset_table["query_lang"] == subset_table["doc_lang"]
    rows = []
    for setting, mask in (("same", same), ("cross", ~same), ("all", same | ~same)):
        part = subset_table[mask]
        for metric in METRICS:
            rows.append({"setting": setting, "metric": metric, "value": float(part[metric].mean()),
                         "n_subsets": int(len(part)), "n_queries": int(part["n_queries"].sum())})
    return pd.DataFrame(rows)


def metric_rows(result: MlqaResult, *, model: str, strategy: str, alpha: float | None = None,
                seed: int | None = None, layers: int | None = None) -> pd.DataFrame:
    """``metrics.csv`` rows of one model: every subset and metric, then the same/cross/all means."""
    tags = {"model": model, "strategy": strategy, "alpha": alpha, "seed": seed, "layers": layers,
            "dataset": DATASET}
    rows = []
    for r in result.subsets.itertuples(index=False):
        for metric in METRICS:
            rows.append({**tags, "setting": "subset", "query_lang": r.query_lang, "doc_lang": r.doc_lang,
                         "metric": metric, "value": getattr(r, metric), "n_queries": r.n_queries})
    for r in result.summary().itertuples(index=False):
        rows.append({**tags, "setting": r.setting, "query_lang": "", "doc_lang": "", "metric": r.metric,
                     "value": r.value, "n_queries": r.n_queries})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


# --------------------------------------------------------------------------
# Files (lib.evaluation's metrics.csv and per_query/ conventions)


def write_mlqa_results(result: MlqaResult, profile: str, *, model: str, strategy: str,
                       alpha: float | None = None, seed: int | None = None,
                       layers: int | None = None) -> pd.DataFrame:
    """Write the model's rows to metrics.csv (upsert by model + dataset) and its per-query parquet."""
    rows = metric_rows(result, model=model, strategy=strategy, alpha=alpha, seed=seed, layers=layers)
    path = per_query_path(profile, model, DATASET)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        result.per_query.to_parquet(tmp, index=False)
    upsert_metrics(profile, rows)
    return rows


def record_evaluation(profile: str, model: str, key: dict) -> None:
    """Remember what (model fingerprint, settings) produced the model's MLQARetrieval rows (the profile's
    one evaluation manifest, ``lib.results``)."""
    record(profile, f"{model}__{DATASET}", key)


def has_results(profile: str, model: str, key: dict | None = None) -> bool:
    """Whether metrics.csv holds the model's MLQARetrieval rows, its per-query file exists and (when
    ``key`` is given) they were produced by the same model fingerprint and settings."""
    path = metrics_path(profile)
    if not (path.is_file() and per_query_path(profile, model, DATASET).is_file()):
        return False
    if key is not None and read_manifest(profile)["entries"].get(f"{model}__{DATASET}") != key:
        return False
    frame = pd.read_csv(path, usecols=["model", "dataset"], dtype=str)
    return bool(((frame["model"] == model) & (frame["dataset"] == DATASET)).any())
