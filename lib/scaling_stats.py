"""Intervals of notebook 07 over training seeds and questions (research question 2).

The unit of evidence is (training seed, question), as in notebook 04
(:func:`lib.stats.seed_question_test`): a strategy at one size is an *arm*
(its models differ only in the training seed, :func:`lib.models.arm_name`),
and its score is the macro mean over cells (MLQARetrieval subsets or
XQuAD-R language pairs) of the seed-averaged per-question values. Its
interval adds the seed variance (spread of the per-seed macro means / number
of seeds) to the question variance (items, i.e. a question with all its
translations, as clusters); a difference between two arms of one size is
tested the same way, and :func:`lib.stats.compare_verdict` turns it into
``better`` / ``worse`` / ``equivalent`` / ``inconclusive`` with the
profile's margin. An arm with one seed (the untuned model) has no seed
variance; an arm with one trained seed says so (``n_seeds``).

Input frames (:func:`mlqa_frame`, :func:`lareqa_frame`) have one row per
model and question: ``model, query_id, item_id, group, cell`` and the value.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import pandas as pd

from lib.evaluation import load_per_query, per_query_path
from lib.mlqa_retrieval import DATASET as MLQA_RETRIEVAL
from lib.stats import compare_verdict, seed_question_interval, seed_question_test

INTERVAL_COLUMNS = ["model", "group", "estimate", "low", "high", "se", "se_seeds", "n_seeds", "seeds", "n_cells",
                    "n_queries"]
GAP_COLUMNS = ["model_a", "model_b", "group", "estimate", "low", "high", "p_value", "outcome", "margin",
               "n_seeds_a", "n_seeds_b"]


def _seed_matrix(frame: pd.DataFrame, models: Sequence[str], value: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(queries x models values with no missing entry, per-query ``cell`` and ``item_id``)."""
    part = frame[frame["model"].isin(models)]
    wide = part.pivot_table(index="query_id", columns="model", values=value, aggfunc="first")
    wide = wide.reindex(columns=[m for m in models if m in wide.columns]).dropna()
    facts = part.drop_duplicates("query_id").set_index("query_id").loc[wide.index, ["cell", "item_id"]]
    return wide, facts


def _arms(per_query: pd.DataFrame, arms: Mapping[str, str] | None) -> dict[str, list[str]]:
    """arm -> its models (each model its own arm when ``arms`` is None)."""
    out: dict[str, list[str]] = {}
    for model in sorted(per_query["model"].unique()):
        out.setdefault(arms.get(model, model) if arms else model, []).append(model)
    return out


def intervals(per_query: pd.DataFrame, value: str, arms: Mapping[str, str] | None = None,
              level: float = 0.95) -> pd.DataFrame:
    """Macro mean per (arm, group) over its seeds and questions, with the seed x question interval.

    ``arms`` maps each model to its arm (``SizedModel.arm``); the ``model``
    column of the result holds the arm.
    """
    frame = per_query.dropna(subset=[value])
    rows = []
    for arm, models in _arms(frame, arms).items():
        for group, part in frame[frame["model"].isin(models)].groupby("group", sort=True):
            wide, facts = _seed_matrix(part, models, value)
            if wide.empty:
                continue
            a = wide.to_numpy(float).T  # seeds x questions
            res = seed_question_interval(a, groups=facts["cell"].to_numpy(), clusters=facts["item_id"].to_numpy(),
                                         level=level)
            rows.append({"model": arm, "group": group, "estimate": res["point"], "low": res["low"],
                         "high": res["high"], "se": res["se"], "se_seeds": res["se_seeds"], "n_seeds": a.shape[0],
                         "seeds": ",".join(wide.columns), "n_cells": int(facts["cell"].nunique()),
                         "n_queries": int(len(wide))})
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def gaps(per_query: pd.DataFrame, value: str, pairs: Sequence[tuple[str, str]],
         arms: Mapping[str, str] | None = None, margin: float = 0.01, level: float = 0.95) -> pd.DataFrame:
    """Differences arm a - arm b per group, paired on the questions both answered: the seed x question
    interval and t-test of :func:`lib.stats.seed_question_test` and the study's verdict."""
    frame = per_query.dropna(subset=[value])
    members = _arms(frame, arms)
    rows = []
    for a, b in pairs:
        if a not in members or b not in members:
            continue
        for group, part in frame[frame["model"].isin(members[a] + members[b])].groupby("group", sort=True):
            wide, facts = _seed_matrix(part, members[a] + members[b], value)
            cols_a = [m for m in members[a] if m in wide.columns]
            cols_b = [m for m in members[b] if m in wide.columns]
            if wide.empty or not cols_a or not cols_b:
                continue
            res = seed_question_test(wide[cols_a].to_numpy(float).T, wide[cols_b].to_numpy(float).T,
                                     groups=facts["cell"].to_numpy(), clusters=facts["item_id"].to_numpy(),
                                     level=level)
            outcome = compare_verdict(res["point"], res["low"], res["high"], res["p_value"], level=1 - level,
                                      margin=margin)
            rows.append({"model_a": a, "model_b": b, "group": group, "estimate": res["point"], "low": res["low"],
                         "high": res["high"], "p_value": res["p_value"], "outcome": outcome, "margin": margin,
                         "n_seeds_a": len(cols_a), "n_seeds_b": len(cols_b)})
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def mlqa_frame(profile: str, models: Iterable[str], metric: str = "ndcg_at_10") -> pd.DataFrame:
    """MLQARetrieval per-query values: groups same / cross / all, cell = subset."""
    parts = []
    for model in models:
        pq = pd.read_parquet(per_query_path(profile, model, MLQA_RETRIEVAL))
        pq = pq.assign(model=model, cell=pq["query_lang"] + "-" + pq["doc_lang"])
        pq["item_id"] = pq["item_id"].where(pq["item_id"].astype(str) != "", pq["query_id"])
        pq["query_id"] = pq["query_id"].astype(str) + "|" + pq["doc_lang"]  # one question per subset
        same = pq["query_lang"] == pq["doc_lang"]
        parts += [pq[same].assign(group="same"), pq[~same].assign(group="cross"), pq.assign(group="all")]
    return pd.concat(parts, ignore_index=True)[["model", "query_id", "item_id", "group", "cell", metric]]


def lareqa_frame(profile: str, models: Iterable[str], dataset: str = "xquad_r", metric: str = "ap") -> pd.DataFrame:
    """LAReQA per-query values (lib.evaluation): group = setting, cell = language pair."""
    parts = []
    for model in models:
        pq = load_per_query(profile, model, dataset)
        parts.append(pq.assign(model=model, group=pq["setting"], cell=pq["query_lang"] + "-" + pq["doc_lang"],
                               query_id=pq["query_id"].astype(str) + "|" + pq["doc_lang"]))
    return pd.concat(parts, ignore_index=True)[["model", "query_id", "item_id", "group", "cell", metric]]
