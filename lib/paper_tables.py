"""The paper's published numbers and our results in its table layouts (notebooks 04 and 05).

Published numbers (docs/study.md section 2): Table 1 (macro mAP, mono / cross /
multi) and Table 2 (mean rank distance) of Elmahdy et al. (arXiv
2408.10536), and LAReQA's mBERT multilingual-pool mAP.

An *arm* is a training strategy (``mono``, ``cross``, ``hybrid`` at the
paper's alpha 0.5, another alpha as ``hybrid a=<alpha>``) or ``zero-shot``;
its seeds are its models. Tables average over seeds and show the spread;
:func:`macro_average` is the paper's averaging (mean over cells). The test
of the paper's claims on these arms is :mod:`lib.paper`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lib import stats as S
from lib.data_files import LANGS, ZERO_SHOT_LANGS
from lib.evaluation import DATASETS, SETTINGS, load_per_query
from lib.metric_registry import label
from lib.models import PAPER_ALPHA

# (backbone, strategy) -> dataset -> (mono, cross, multi) macro mAP; paper Table 1
TABLE1 = {
    ("XLM-R", "mono"): {"xquad_r": (.792, .674, .547), "mlqa_r": (.648, .584, .473)},
    ("XLM-R", "cross"): {"xquad_r": (.755, .700, .593), "mlqa_r": (.626, .620, .508)},
    ("XLM-R", "hybrid"): {"xquad_r": (.798, .705, .593), "mlqa_r": (.648, .623, .512)},
    ("LaBSE", "mono"): {"xquad_r": (.808, .752, .652), "mlqa_r": (.681, .656, .550)},
    ("LaBSE", "cross"): {"xquad_r": (.801, .762, .679), "mlqa_r": (.671, .677, .576)},
    ("LaBSE", "hybrid"): {"xquad_r": (.817, .767, .682), "mlqa_r": (.686, .681, .579)},
}
# (backbone, strategy) -> dataset -> mean rank distance; paper Table 2
TABLE2 = {
    ("XLM-R", "mono"): {"xquad_r": 410, "mlqa_r": 288},
    ("XLM-R", "cross"): {"xquad_r": 295, "mlqa_r": 227},
    ("XLM-R", "hybrid"): {"xquad_r": 287, "mlqa_r": 227},
    ("LaBSE", "mono"): {"xquad_r": 262, "mlqa_r": 225},
    ("LaBSE", "cross"): {"xquad_r": 225, "mlqa_r": 198},
    ("LaBSE", "hybrid"): {"xquad_r": 221, "mlqa_r": 195},
}
# LAReQA (Roy et al. 2020) mBERT baselines, multilingual-pool mAP
LAREQA_MBERT = {"En-En": {"xquad_r": .29, "mlqa_r": .36}, "X-X": {"xquad_r": .23, "mlqa_r": .26},
                "X-X-mono": {"xquad_r": .52, "mlqa_r": .49}, "X-Y": {"xquad_r": .66, "mlqa_r": .49}}
# the paper's Table 1 quantities as (setting, metric); our column names "<setting> <label>", e.g. "mono mAP"
TABLE1_CELLS = (("mono", "map"), ("cross", "map"), ("multi", "map"), ("mono", "recall_at_1"),
                ("cross", "recall_at_1"), ("multi", "recall_at_10"))
TABLE1_QUANTITIES = {f"{setting} {label(metric)}": (setting, metric) for setting, metric in TABLE1_CELLS}


def paper_table1() -> pd.DataFrame:
    """Table 1, one row per backbone and strategy, columns (dataset, "<setting> mAP")."""
    rows = {(bb, st): {(ds, f"{s} mAP"): v for ds, values in per.items() for s, v in zip(SETTINGS, values)}
            for (bb, st), per in TABLE1.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["backbone", "strategy"])


def paper_table2() -> pd.DataFrame:
    rows = {(bb, st): per for (bb, st), per in TABLE2.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["backbone", "strategy"])


# --------------------------------------------------------------------------
# Arms and macro averages


def arm_label(strategy: str, alpha: float) -> str:
    if strategy == "hybrid" and not np.isclose(alpha, PAPER_ALPHA):
        return f"hybrid a={alpha:g}"
    return strategy


def with_arms(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` plus an ``arm`` column."""
    return metrics.assign(arm=[arm_label(s, a) for s, a in zip(metrics["strategy"], metrics["alpha"])])


def macro_average(metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's numbers: the mean over cells of each (model, dataset, setting, metric).

    Cells are query languages (mono, multi) or ordered language pairs
    (cross); empty cells (NaN) are left out; ``n_cells`` counts the others.
    """
    frame = with_arms(metrics)
    keys = ["model", "arm", "seed", "dataset", "setting", "metric"]
    frame["seed"] = frame["seed"].fillna(-1)
    out = frame.groupby(keys)["value"].agg(value="mean", n_cells="count").reset_index()
    out["seed"] = out["seed"].replace(-1, np.nan)
    return out


def _quantities(macro: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for name, (setting, metric) in TABLE1_QUANTITIES.items():
        sel = macro[(macro["setting"] == setting) & (macro["metric"] == metric)]
        parts.append(sel.assign(quantity=name))
    return pd.concat(parts, ignore_index=True)


def results_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 1 layout per model: rows (arm, model), columns (dataset, quantity)."""
    q = _quantities(macro_average(metrics))
    table = q.pivot_table(index=["arm", "model"], columns=["dataset", "quantity"], values="value")
    cols = [(d, n) for d in DATASETS for n in TABLE1_QUANTITIES if (d, n) in table.columns]
    return table[cols]


def strategy_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per arm, dataset and quantity: mean over seeds, std, min, max, n_seeds."""
    q = _quantities(macro_average(metrics))
    return S.seed_spread(q, ["arm", "dataset", "quantity"], value="value", seed="seed")


def mean_pm(spread: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Wide table of "mean ± std" strings (std omitted with one seed)."""
    text = [f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if n > 1 and np.isfinite(s) else "")
            for m, s, n in zip(spread["mean"], spread["std"], spread["n_seeds"])]
    table = spread.assign(text=text).pivot(index="arm", columns=["dataset", "quantity"], values="text")
    cols = [(d, n) for d in DATASETS for n in TABLE1_QUANTITIES if (d, n) in table.columns]
    return table[cols]


def beside_paper(metrics: pd.DataFrame) -> pd.DataFrame:
    """Our arms' macro mAP (mean over seeds) with the paper's Table 1 rows below them."""
    spread = strategy_table(metrics)
    spread = spread[spread["quantity"].str.endswith("mAP")]
    ours = spread.pivot(index="arm", columns=["dataset", "quantity"], values="mean")
    ours.index = pd.MultiIndex.from_tuples([("ours (mean over seeds)", a) for a in ours.index])
    paper = paper_table1()
    paper.index = pd.MultiIndex.from_tuples([(f"paper {bb}", st) for bb, st in paper.index])
    both = pd.concat([ours, paper])
    cols = [(d, f"{s} mAP") for d in DATASETS for s in SETTINGS if (d, f"{s} mAP") in both.columns]
    return both[cols]


def per_language_table(metrics: pd.DataFrame, dataset: str, metric: str = "map") -> pd.DataFrame:
    """Per arm and setting, the value per query language (cross: mean over candidate
    languages) and their average, mean over seeds (layout of the paper's per-language tables)."""
    rows = with_arms(metrics[(metrics["dataset"] == dataset) & (metrics["metric"] == metric)])
    per_model = rows.groupby(["arm", "model", "setting", "query_lang"])["value"].mean().reset_index()
    table = per_model.pivot_table(index=["arm", "setting"], columns="query_lang", values="value", aggfunc="mean")
    table["avg"] = table.mean(axis=1)
    return table


def language_matrix(metrics: pd.DataFrame, dataset: str, arm: str, metric: str = "map") -> pd.DataFrame:
    """Query language x candidate language (mono on the diagonal) for one arm, mean over seeds."""
    rows = with_arms(metrics[(metrics["dataset"] == dataset) & (metrics["metric"] == metric)
                             & metrics["setting"].isin(["mono", "cross"])])
    rows = rows[rows["arm"] == arm]
    return rows.pivot_table(index="query_lang", columns="doc_lang", values="value", aggfunc="mean")


def seen_unseen_table(metrics: pd.DataFrame, dataset: str = "xquad_r", metric: str = "map",
                      unseen: Sequence[str] = ZERO_SHOT_LANGS) -> pd.DataFrame:
    """Macro ``metric`` per arm and setting over cells with / without a never-seen language
    (mono and multi: the question's language; cross: either side), mean over seeds."""
    rows = with_arms(metrics[(metrics["dataset"] == dataset) & (metrics["metric"] == metric)])
    touches = rows["query_lang"].isin(unseen) | rows["doc_lang"].isin(unseen)
    rows = rows.assign(languages=np.where(touches, "never seen", "seen"))
    per_model = rows.groupby(["arm", "model", "setting", "languages"])["value"].mean().reset_index()
    return per_model.pivot_table(index="arm", columns=["setting", "languages"], values="value", aggfunc="mean")


# --------------------------------------------------------------------------
# Language bias (multilingual pool)


def rank_distance_table(metrics: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Mean rank distance per arm and query language, and its average (paper Tables 7-8)."""
    return per_language_table(metrics[metrics["setting"] == "multi"], dataset, "rank_distance").droplevel(
        "setting")


def beside_paper_rd(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean rank distance per arm and dataset (mean over seeds, seed std) above the paper's Table 2."""
    macro = macro_average(metrics[(metrics["setting"] == "multi") & (metrics["metric"] == "rank_distance")])
    spread = S.seed_spread(macro, ["arm", "dataset"], value="value", seed="seed")
    order = [d for d in DATASETS if d in set(spread["dataset"])]
    ours = spread.pivot(index="arm", columns="dataset", values="mean")[order]
    std = spread.pivot(index="arm", columns="dataset", values="std")[order].add_suffix(" seed std")
    ours = ours.join(std)
    ours.index = pd.MultiIndex.from_tuples([("ours (mean over seeds)", a) for a in ours.index])
    table2 = paper_table2()
    table2.index = pd.MultiIndex.from_tuples([(f"paper {bb}", st) for bb, st in table2.index])
    return pd.concat([ours, table2])


def bias_frame(profile: str, metrics: pd.DataFrame, dataset: str, n_langs: int | None = None) -> pd.DataFrame:
    """Per question of the multilingual setting, for every model: arm, rank distance, how
    many of the top 10 share its language, the rank of its own-language relevant candidate
    and the mean rank of the others, and whether its item exists in all ``n_langs``
    languages (default: every language of the dataset)."""
    if n_langs is None:
        n_langs = len(LANGS[dataset])
    frame = with_arms(metrics[metrics["dataset"] == dataset]).drop_duplicates("model")
    parts = []
    for model, arm in zip(frame["model"], frame["arm"]):
        pq = load_per_query(profile, model, dataset)
        pq = pq[pq["setting"] == "multi"]
        ranks, langs = pq["relevant_ranks"].to_numpy(), pq["relevant_langs"].to_numpy()
        own = [float(np.asarray(r)[np.asarray(l) == q][0]) if q in set(l) else np.nan
               for r, l, q in zip(ranks, langs, pq["query_lang"])]
        other = [float(np.mean(np.asarray(r)[np.asarray(l) != q])) if len(r) > 1 else np.nan
                 for r, l, q in zip(ranks, langs, pq["query_lang"])]
        parts.append(pd.DataFrame({
            "model": model, "arm": arm, "query_id": pq["query_id"].to_numpy(), "query_lang": pq["query_lang"].to_numpy(),
            "n_relevant": [len(r) for r in ranks], "rank_distance": pq["rank_distance"].to_numpy(),
            "top10_same_lang": pq["top10_same_lang"].to_numpy(), "own_rank": own, "other_rank": other,
            "own_first": [float(o <= np.min(r)) for o, r in zip(own, ranks)]}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["arm", "n_relevant"])
    out["complete"] = out["n_relevant"] == n_langs
    return out


def bias_summary(bias: pd.DataFrame) -> pd.DataFrame:
    """Per arm (mean over seeds of per-language means): rank distance, share of same-language
    candidates in the top 10 (questions with every language only), own-language rank, mean
    rank of the other languages' relevant candidates, share with the own language first."""
    complete = bias[bias["complete"]]
    per_lang = bias.groupby(["arm", "model", "query_lang"])[["rank_distance", "own_rank", "other_rank",
                                                             "own_first"]].mean()
    share = (complete.groupby(["arm", "model", "query_lang"])["top10_same_lang"].mean() / 10).rename(
        "top10_same_lang_share")
    per_model = per_lang.join(share).groupby(["arm", "model"]).mean()
    return per_model.groupby("arm").mean()


def arm_models(metrics: pd.DataFrame, arm: str) -> list[str]:
    """Models of one arm (``mono``, ``cross``, ``hybrid``, ``hybrid a=0.3``, ``zero-shot``)."""
    frame = with_arms(metrics)
    return sorted(frame.loc[frame["arm"] == arm, "model"].unique())
