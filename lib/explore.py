"""Look at what each model retrieves: the logic of ``notebooks/08_explore.ipynb``.

An :class:`Explorer` holds one profile's models (the untuned backbone and
the trained runs, found by ``lib.models``) and one LAReQA pool
(XQuAD-R or MLQA-R, ordered as ``lib.evaluation.layout`` orders it, so the
embeddings notebook 04 cached under ``results/<profile>/embeddings/`` are
reused and nothing is encoded twice). Every view is a function returning a
DataFrame:

- :func:`search`: a question typed in any language (or a dataset question
  id) against the pool, top k per model, with each candidate's language and
  whether it is relevant (known for dataset questions and for a typed text
  that is one of them);
- :func:`question_table`: the dataset questions with their rank distance per
  model (largest first), filtered by question and candidate language;
- :func:`question_ranks`: where every relevant candidate of one question
  ranks, per model (the rank-distance picture), with :func:`rank_summary`;
- :func:`side_by_side`: top-k lists of several models as one table.

:mod:`lib.explore_widget` draws the rank picture
(``plot_question_ranks``) and puts the views behind ipywidgets controls for
JupyterLab; the functions here run without it (papermill, nbval, scripts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from lib import strategies
from lib.data import load_lareqa
from lib.errors import ConfigError
from lib.evaluation import Layout, check_dataset, layout
from lib.metrics import average_precision, rank_distance
from lib.models import (ZERO_SHOT, ModelSpec, default_runs, describe_model, has_weights, trained_from,
                        trained_models, zero_shot_name)
from lib.paths import PROJ_ROOT
from lib.retrieval import block_ranks, encode_cached, resolve_encoder, topk_search
from lib.settings import comma_list

MAX_LENGTH = 128  # as lib.evaluation.evaluate_model: the cache key includes it
MARKS = {True: "\u2713", False: "\u2717", None: "\u00b7"}  # relevant, not relevant, unknown


# --------------------------------------------------------------------------
# Which models


def model_table(profile: str, backbone: str = "embedded", num_layers: int = 0) -> pd.DataFrame:
    """The untuned backbone and every finished run of ``profile`` trained from ``backbone`` at this depth.

    Columns ``model, strategy, alpha, seed, path, weights, default``;
    ``weights`` says whether the model can encode here (a run trained on
    another machine has its results but not its weights, see ``lib.models``);
    ``default`` marks the zero-shot model and the seed-0 run of each strategy
    (hybrid: alpha closest to 0.5) among those with weights, the selection
    :func:`select_models` makes when given none.
    """
    zero = zero_shot_name(backbone, num_layers)
    runs = [(describe_model(str(run)), str(run)) for run in trained_models(profile)
            if trained_from(run, backbone, num_layers)]
    rows = [(zero, ZERO_SHOT, math.nan, math.nan, backbone, True)]
    rows += [(spec.name, spec.strategy, spec.alpha, spec.seed, path, has_weights(Path(path))) for spec, path in runs]
    frame = pd.DataFrame(rows, columns=["model", "strategy", "alpha", "seed", "path", "weights"])
    here = default_runs(s for s, path in runs if has_weights(Path(path)))
    frame["default"] = frame["model"].isin({zero} | {spec.name for spec in here})
    order = frame["strategy"].map(strategies.order_key)
    return frame.assign(_o=order).sort_values(["_o", "model"]).drop(columns="_o").reset_index(drop=True)


def select_models(profile: str, backbone: str = "embedded", num_layers: int = 0,
                  models: str | Sequence[str] = "") -> list[ModelSpec]:
    """``ModelSpec`` s (names and fingerprints as in metrics.csv and the embedding cache).

    ``models``: comma-separated model names from :func:`model_table` (``zero-shot``
    names the untuned backbone); empty: its ``default`` rows.
    """
    table = model_table(profile, backbone, num_layers)
    if isinstance(models, str):
        models = comma_list(models)
    if not models:
        chosen = table[table["default"]]
    else:
        zero = table.loc[0, "model"]
        wanted = [zero if m == ZERO_SHOT else m for m in models]
        unknown = [m for m in wanted if m not in set(table["model"])]
        if unknown:
            raise ConfigError(f"parameter models: {unknown} not found; models of profile {profile!r} trained from "
                              f"{backbone!r} with num_layers={num_layers}: {table['model'].tolist()}")
        chosen = table.set_index("model").loc[list(dict.fromkeys(wanted))].reset_index()
    specs = []
    for row in chosen.itertuples():
        if row.strategy == ZERO_SHOT:
            specs.append(describe_model(backbone, row.model, num_layers))
        else:
            specs.append(describe_model(row.path))
    return specs


def explore_profiles() -> list[str]:
    """Profiles with results to explore: folders under ``results/`` holding trained models or evaluations."""
    root = PROJ_ROOT / "results"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / "models").is_dir() or (p / "evaluations.json").is_file())


# --------------------------------------------------------------------------
# The explorer


def _langs(value) -> list[str] | None:
    """``"de, en"`` / ``["de", "en"]`` -> list; ``""`` / ``None`` / empty -> None (all languages)."""
    if value is None:
        return None
    return comma_list(value) or None


@dataclass
class Explorer:
    """One profile's models over one LAReQA pool, with their (cached) embeddings."""

    profile: str
    dataset: str
    max_items: int
    lay: Layout
    models: list[ModelSpec]
    _loaders: dict[str, Callable[[], object]] = field(default_factory=dict, repr=False)
    _emb: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def query_langs(self) -> list[str]:
        return sorted(self.lay.queries["lang"].unique())

    @property
    def doc_langs(self) -> list[str]:
        return list(self.lay.langs)

    def spec(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise ConfigError(f"model {name!r} is not open here; models: {self.names}")

    def encoder(self, name: str):
        """The model itself (loaded on first use: only typed questions need it)."""
        if name not in self._loaders:
            self._loaders[name] = resolve_encoder(self.spec(name).load)
        from transformers.utils import logging as hf_logging  # lazy: only typed questions load a model

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar per model in the notebook
        try:
            return self._loaders[name]()
        finally:
            if shown:
                hf_logging.enable_progress_bar()

    def embeddings(self, name: str, role: str) -> np.ndarray:
        """Pool (``passage``) or dataset-question (``query``) embeddings, from the evaluation cache."""
        if (name, role) not in self._emb:
            spec = self.spec(name)
            texts = (self.lay.docs if role == "passage" else self.lay.queries)["text"].tolist()
            self._emb[name, role] = encode_cached(lambda: self.encoder(name), texts, role, profile=self.profile,
                                                  model=spec.name, dataset=self.dataset,
                                                  model_fp=spec.fingerprint, max_length=MAX_LENGTH,
                                                  progress=False)
        return self._emb[name, role]

    def pool_mask(self, doc_langs=None) -> np.ndarray:
        langs = _langs(doc_langs)
        if langs is None:
            return np.ones(len(self.lay.docs), dtype=bool)
        unknown = sorted(set(langs) - set(self.lay.langs))
        if unknown:
            raise ConfigError(f"parameter doc_langs: {unknown} not in the {self.dataset} pool; "
                              f"its languages are {self.lay.langs}")
        return self.lay.docs["lang"].isin(langs).to_numpy()

    def question_index(self, qid: str) -> int:
        hits = np.flatnonzero(self.lay.queries["qid"].to_numpy() == qid)
        if not len(hits):
            raise ConfigError(f"parameter question_id: {qid!r} is not a question of {self.dataset} "
                              f"(max_items={self.max_items}); e.g. {self.lay.queries['qid'].iloc[0]!r}")
        return int(hits[0])

    def match_question(self, text: str) -> int | None:
        """The dataset question with this id or exactly this text (case and spaces ignored), else None."""
        if text in set(self.lay.queries["qid"]):
            return self.question_index(text)
        norm = " ".join(text.split()).casefold()
        texts = self.lay.queries["text"].map(lambda t: " ".join(t.split()).casefold()).to_numpy()
        hits = np.flatnonzero(texts == norm)
        return int(hits[0]) if len(hits) else None


def open_explorer(profile: str, dataset: str = "xquad_r", *, backbone: str = "embedded", num_layers: int = 0,
                  max_items: int = 0, models: str | Sequence[str] = "", data=None) -> Explorer:
    """An :class:`Explorer` of ``profile``'s models on ``dataset`` (``xquad_r`` or ``mlqa_r``).

    ``data`` overrides ``lib.data.load_lareqa(dataset, max_items=max_items)``.
    """
    check_dataset(dataset)
    if data is None:
        data = load_lareqa(dataset, max_items=max_items)
    specs = select_models(profile, backbone, num_layers, models)
    return Explorer(profile, dataset, int(max_items), layout(data), specs)


# --------------------------------------------------------------------------
# Views


def _answers(ex: Explorer) -> np.ndarray:
    """Per pool candidate, the item ids whose answer it is (comma-separated; "" for other sentences)."""
    items = ex.lay.queries["item_id"].to_numpy()
    out = [[] for _ in range(len(ex.lay.docs))]
    seen = set()
    for item, rel in zip(items, ex.lay.relevant):
        if item in seen:
            continue
        seen.add(item)
        for p in rel:
            out[p].append(str(item))
    return np.array([",".join(x) for x in out], dtype=object)


def search(ex: Explorer, question: str, k: int = 10, doc_langs=None, models: Sequence[str] | None = None
           ) -> pd.DataFrame:
    """Top ``k`` candidates per model for ``question`` (typed text in any language, or a dataset qid).

    One row per (model, rank): ``model, strategy, rank, score, doc_id, lang,
    relevant, answers_item, text``. ``relevant`` is True / False when the
    question is a dataset question (matched by id or exact text), else None;
    ``answers_item`` names the item(s) whose answer the candidate is.
    """
    if not str(question).strip():
        raise ConfigError("parameter question is empty; type a question (any language) or a dataset question id")
    mask = ex.pool_mask(doc_langs)
    pool_idx = np.flatnonzero(mask)
    if not len(pool_idx):
        raise ConfigError("parameter doc_langs leaves no candidate")
    qi = ex.match_question(question)
    relevant = set(ex.lay.relevant[qi].tolist()) if qi is not None else None
    answers = _answers(ex)
    rows = []
    for name in models or ex.names:
        spec = ex.spec(name)
        if qi is not None:
            q = ex.embeddings(name, "query")[qi:qi + 1]
        else:
            q = np.asarray(ex.encoder(name).encode([question], "query", max_length=MAX_LENGTH, progress=False),
                           dtype=np.float32)
        scores, ids = topk_search(q, ex.embeddings(name, "passage")[pool_idx], k=k, threads=1)
        for rank, (s, i) in enumerate(zip(scores[0], ids[0]), 1):
            p = int(pool_idx[i])
            doc = ex.lay.docs.iloc[p]
            rows.append((name, spec.strategy, rank, float(s), doc["doc_id"], doc["lang"],
                         None if relevant is None else p in relevant, answers[p], doc["text"]))
    return pd.DataFrame(rows, columns=["model", "strategy", "rank", "score", "doc_id", "lang", "relevant",
                                       "answers_item", "text"])


def side_by_side(hits: pd.DataFrame, width: int = 90) -> pd.DataFrame:
    """:func:`search` rows as one column per model: ``[lang] mark text`` per rank (mark: relevant or not)."""
    def cell(r):
        text = r.text if len(r.text) <= width else r.text[:width - 1] + "\u2026"
        return f"[{r.lang}] {MARKS[None if pd.isna(r.relevant) else bool(r.relevant)]} {text}"
    out = hits.assign(cell=[cell(r) for r in hits.itertuples()])
    wide = out.pivot(index="rank", columns="model", values="cell")
    return wide[list(dict.fromkeys(hits["model"]))]


def _restricted(ex: Explorer, mask: np.ndarray, query_idx: np.ndarray):
    """Pool positions kept by ``mask`` and, per question, its relevant candidates among them (new indices)."""
    new = np.full(len(mask), -1, dtype=np.int64)
    new[mask] = np.arange(int(mask.sum()))
    rel = [new[ex.lay.relevant[i]] for i in query_idx]
    return [r[r >= 0] for r in rel]


def question_table(ex: Explorer, query_langs=None, doc_langs=None) -> pd.DataFrame:
    """Dataset questions with their rank distance per model in the (filtered) pool, largest first.

    Columns ``qid, lang, text, n_relevant`` and one rank-distance column per
    model (NaN with fewer than two relevant candidates in the pool). Sorted by
    the first model's distance (the untuned one unless chosen otherwise).
    """
    qlangs = _langs(query_langs)
    queries = ex.lay.queries
    if qlangs is not None:
        unknown = sorted(set(qlangs) - set(queries["lang"]))
        if unknown:
            raise ConfigError(f"parameter query_langs: {unknown} not among the {ex.dataset} questions' "
                              f"languages {ex.query_langs}")
    keep = np.flatnonzero(queries["lang"].isin(qlangs).to_numpy() if qlangs else np.ones(len(queries), bool))
    mask = ex.pool_mask(doc_langs)
    rel = _restricted(ex, mask, keep)
    has = np.array([len(r) > 0 for r in rel], dtype=bool)
    keep, rel = keep[has], [r for r, h in zip(rel, has) if h]
    out = queries.iloc[keep][["qid", "lang", "text"]].reset_index(drop=True)
    out["n_relevant"] = [len(r) for r in rel]
    for name in ex.names:
        q = ex.embeddings(name, "query")[keep]
        ranks = block_ranks(q, ex.embeddings(name, "passage")[mask], rel)[0] if len(keep) else []
        out[name] = [rank_distance(r) for r in ranks]
    if ex.names and len(out):
        out = out.sort_values(ex.names[0], ascending=False, kind="stable", na_position="last")
    return out.reset_index(drop=True)


def question_ranks(ex: Explorer, qid: str, doc_langs=None) -> pd.DataFrame:
    """Where each relevant candidate of question ``qid`` ranks in the (filtered) pool, per model.

    One row per (model, relevant candidate): ``model, strategy, doc_id,
    lang, same_lang, rank, score`` (exact 1-based ranks, ties counted against
    the relevant candidate as in ``lib.retrieval``).
    """
    qi = ex.question_index(qid)
    mask = ex.pool_mask(doc_langs)
    rel = _restricted(ex, mask, np.array([qi]))[0]
    if not len(rel):
        raise ConfigError(f"parameter doc_langs: question {qid!r} has no relevant candidate in {_langs(doc_langs)}")
    docs = ex.lay.docs[mask].reset_index(drop=True).iloc[rel]
    q_lang = ex.lay.queries["lang"].iloc[qi]
    rows = []
    for name in ex.names:
        q = ex.embeddings(name, "query")[qi:qi + 1]
        pool = ex.embeddings(name, "passage")[mask]
        ranks = block_ranks(q, pool, [rel], threads=1)[0][0]
        scores = pool[rel] @ q[0]
        for (_, doc), r, s in zip(docs.iterrows(), ranks, scores):
            rows.append((name, ex.spec(name).strategy, doc["doc_id"], doc["lang"], doc["lang"] == q_lang,
                         int(r), float(s)))
    frame = pd.DataFrame(rows, columns=["model", "strategy", "doc_id", "lang", "same_lang", "rank", "score"])
    return frame.sort_values(["model", "rank"], key=lambda c: c.map(ex.names.index) if c.name == "model" else c,
                             kind="stable").reset_index(drop=True)


def rank_summary(ranks: pd.DataFrame) -> pd.DataFrame:
    """:func:`question_ranks` as a table: one row per candidate language (rank per model), then the
    question's rank distance and average precision in that pool per model."""
    order = list(dict.fromkeys(ranks["model"]))
    wide = ranks.pivot(index="lang", columns="model", values="rank")[order]
    same = ranks.loc[ranks["same_lang"], "lang"]
    if len(same):  # the question's own language first
        wide = wide.loc[[same.iloc[0]] + [x for x in wide.index if x != same.iloc[0]]]
    by_model = ranks.groupby("model", sort=False)["rank"]
    extra = pd.DataFrame([by_model.apply(lambda r: rank_distance(r.to_numpy())),
                          by_model.apply(lambda r: round(average_precision(r.to_numpy()), 3))],
                         index=["rank distance", "AP"])[order]
    return pd.concat([wide.astype(object), extra.astype(object)])


def conclusion(hits: pd.DataFrame, questions: pd.DataFrame | None = None, ranks: pd.DataFrame | None = None,
               qid: str = "") -> list[str]:
    """Notebook 08's conclusion in plain lines: for the example question (:func:`search` rows) the
    languages of each model's top k and how many are relevant; over the listed questions
    (:func:`question_table`) the mean rank distance per model; for the picked question (``qid``,
    :func:`question_ranks`) its rank distance and own-language rank per model."""
    lines = []
    models = list(dict.fromkeys(hits["model"]))
    k = int(hits["rank"].max()) if len(hits) else 0
    parts = []
    for m in models:
        part = hits[hits["model"] == m]
        langs = part["lang"].value_counts(sort=False).sort_values(ascending=False, kind="stable")
        text = " ".join(f"{lang} {n}" for lang, n in langs.items())
        known = part["relevant"].dropna()
        if len(known):
            text += f"; {int(known.astype(bool).sum())} relevant"
        parts.append(f"{m}: {text}")
    if parts:
        lines.append(f"Example question, languages of the top {k}: " + " | ".join(parts) + ".")
    if questions is not None and len(questions):
        means = {m: float(questions[m].mean()) for m in models if m in questions.columns}
        if means:
            lines.append(f"Over the {len(questions)} listed questions, mean rank distance: "
                         + ", ".join(f"{m} {v:.1f}" for m, v in means.items()) + " (lower: less language bias).")
    if ranks is not None and len(ranks):
        parts = []
        for m, part in ranks.groupby("model", sort=False):
            own = part.loc[part["same_lang"], "rank"]
            parts.append(f"{m} {rank_distance(part['rank'].to_numpy()):.0f}"
                         + (f" (own language at rank {int(own.iloc[0])})" if len(own) else ""))
        lines.append(f"Question {qid or '?'}: rank distance " + ", ".join(parts) + ".")
    return lines
