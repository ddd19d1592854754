"""The paper's published numbers, our results in its table layouts, and the test of its claims.

Published numbers (docs/study.md section 2): Table 1 (macro mAP, mono / cross /
multi) and Table 2 (mean rank distance) of Elmahdy et al. (arXiv
2408.10536), and LAReQA's mBERT multilingual-pool mAP.

An *arm* is a training strategy (``mono``, ``cross``, ``hybrid`` at the
paper's alpha 0.5, another alpha as ``hybrid a=<alpha>``) or ``zero-shot``;
its seeds are its models. Tables average over seeds and show the spread.

Claims (docs/study.md): (1) hybrid matches or beats the better of X-X-mono and
X-Y in every setting; (2) hybrid reduces language bias against X-X-mono
substantially; (3) the effect holds for languages never seen in training.
How :func:`check_claims` decides:

- Two arms are compared on the same questions by the macro difference (the
  paper's averaging) of their seed-averaged per-question scores (AP, or
  rank distance). The unit of evidence is (training seed, question): the
  interval and p-value come from :func:`lib.stats.seed_question_test`, whose
  variance has a question part (items as clusters, so a question's
  translations move together) and a seed part (the spread of each arm's
  per-seed macro means), with a t reference distribution (Welch-Satterthwaite
  degrees of freedom). The question-only sign-flip test and cluster bootstrap
  of the seed-averaged scores are kept beside them for reference. Holm's
  correction runs within each claim (one family per claim).
- An outcome follows the one rule of :func:`lib.stats.compare_verdict`:
  ``equivalent`` when the interval lies within +-``margin`` mAP (significant
  or not), else ``better`` / ``worse`` (Holm p < ``level`` and the interval
  excludes 0), else ``inconclusive``.
- Claim 1, per dataset and setting, compares hybrid with the better of mono
  and cross (higher macro mAP); supported when every outcome is better or
  equivalent, not supported when one is worse.
- Claim 2, per dataset, compares multilingual rank distance with mono's:
  ``better`` when lower (Holm p < ``level``) by at least ``substantial`` (10%)
  of mono's value, ``not substantial`` when the interval rules out a
  reduction of that size; supported when every dataset is ``better``, not
  supported when one is ``not substantial``.
- Claim 3 repeats claims 1 and 2 on XQuAD-R restricted to the never-seen
  languages (el, th, tr): questions in them, and cross cells where either
  side is one. Supported when both are, not supported when either is not.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lib import stats as S
from lib.errors import ConfigError
from lib.evaluation import DATASETS, SETTINGS, load_per_query

ZERO_SHOT_LANGS = ("el", "th", "tr")
PAPER_ALPHA = 0.5

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
CLAIMS = {
    1: "hybrid matches or beats the better of X-X-mono and X-Y in every setting (mAP)",
    2: "hybrid reduces language bias (multilingual rank distance) against X-X-mono substantially",
    3: "the effect holds for languages never seen in training (el, th, tr)",
}
# our column names for the paper's Table 1 quantities: (setting, metric)
TABLE1_QUANTITIES = {"mono mAP": ("mono", "map"), "cross mAP": ("cross", "map"), "multi mAP": ("multi", "map"),
                     "mono R@1": ("mono", "recall_at_1"), "cross R@1": ("cross", "recall_at_1"),
                     "multi R@10": ("multi", "recall_at_10")}


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
        from lib.data import LANGS
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


# --------------------------------------------------------------------------
# Comparisons and claims


def arm_models(metrics: pd.DataFrame, arm: str) -> list[str]:
    """Models of one arm (``mono``, ``cross``, ``hybrid``, ``hybrid a=0.3``, ``zero-shot``)."""
    frame = with_arms(metrics)
    return sorted(frame.loc[frame["arm"] == arm, "model"].unique())


def arm_scores(profile: str, models: Sequence[str], dataset: str, setting: str, column: str = "ap",
               langs: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-question ``column`` of a setting for each of ``models`` (an arm's seeds).

    Index ``(query_id, doc_lang)``; columns ``value`` (the mean over the
    seeds), ``seed_0`` .. ``seed_<k-1>`` (each model's own score), ``cell``
    (the macro group: query language, or the pair for cross) and
    ``item_id``. With ``langs``: questions in those languages (cross: either
    side in them).
    """
    if not models:
        raise ConfigError(f"no models for this arm on {dataset}; train them first")
    frames = []
    for model in models:
        pq = load_per_query(profile, model, dataset)
        pq = pq[pq["setting"] == setting]
        if langs is not None:
            keep = pq["query_lang"].isin(langs)
            if setting == "cross":
                keep |= pq["doc_lang"].isin(langs)
            pq = pq[keep]
        frames.append(pq.set_index(["query_id", "doc_lang"])[[column, "query_lang", "item_id"]])
    base = frames[0]
    for other in frames[1:]:
        S.align(base[column], other[column], ("one seed's model", "another seed's model"))
    per_seed = pd.concat([f[column].rename(f"seed_{i}") for i, f in enumerate(frames)], axis=1)
    cell = base["query_lang"] + ("->" + base.index.get_level_values("doc_lang") if setting == "cross" else "")
    out = pd.concat([per_seed.mean(axis=1).rename("value"), per_seed], axis=1)
    out["cell"], out["item_id"] = cell, base["item_id"]
    return out.dropna(subset=["value"])


def _seed_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith("seed_")]


def compare_scores(a: pd.DataFrame, b: pd.DataFrame, n_permutations: int = 10_000, n_bootstrap: int = 2000,
                   seed: int = 0) -> dict:
    """Macro means of two arms on the same questions, their difference and its uncertainty.

    The decision statistics respect training seeds: ``ci_low`` / ``ci_high``
    and ``p_value`` come from :func:`lib.stats.seed_question_test` (seeds and
    questions as sources of variance; items as clusters). For reference the
    question-only statistics of the seed-averaged scores are kept as well:
    ``p_perm`` (sign-flip), ``p_t`` (cluster t-test) and ``ci_low_q`` /
    ``ci_high_q`` (cluster bootstrap).
    """
    paired = S.align(a["value"], b["value"], ("arm A", "arm B"))
    idx = paired.index
    groups, clusters = a.loc[idx, "cell"].to_numpy(), a.loc[idx, "item_id"].to_numpy()
    seeds_a = a.loc[idx, _seed_columns(a) or ["value"]].to_numpy().T
    seeds_b = b.loc[idx, _seed_columns(b) or ["value"]].to_numpy().T
    test = S.seed_question_test(seeds_a, seeds_b, groups, clusters)
    ci = S.bootstrap_ci(paired["a"] - paired["b"], groups=groups, clusters=clusters, n_bootstrap=n_bootstrap,
                        seed=seed)
    perm = S.paired_randomization_test(paired["a"], paired["b"], groups=groups, clusters=clusters,
                                       n_permutations=n_permutations, seed=seed)
    t = S.paired_t_test(paired["a"], paired["b"], clusters=clusters)
    return {"a_value": S.macro_mean(paired["a"], groups), "b_value": S.macro_mean(paired["b"], groups),
            "diff": test["point"], "ci_low": test["low"], "ci_high": test["high"], "p_value": test["p_value"],
            "se": test["se"], "se_seeds": test["se_seeds"], "df": test["df"],
            "seed_variance_known": test["seed_variance_known"], "ci_low_q": ci["low"], "ci_high_q": ci["high"],
            "p_perm": perm["p_value"], "p_t": t["p_value"], "n_questions": len(paired),
            "n_items": perm["n_clusters"]}


COMPARISON_COLUMNS = ["subset", "dataset", "setting", "metric", "arm_a", "arm_b", "n_seeds_a", "n_seeds_b",
                      "a_value", "b_value", "diff", "ci_low", "ci_high", "p_value", "se", "se_seeds", "df",
                      "seed_variance_known", "ci_low_q", "ci_high_q", "p_perm", "p_t", "n_questions", "n_items"]


def compare_arms(profile: str, metrics: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                 datasets: Sequence[str] = DATASETS, settings: Sequence[str] = SETTINGS, metric: str = "map",
                 langs: Sequence[str] | None = None, n_permutations: int = 10_000,
                 n_bootstrap: int = 2000) -> pd.DataFrame:
    """One row per (dataset, setting, pair of arms): see :func:`compare_scores`; rows for a
    missing arm keep NaN values. ``metric`` is ``map`` (per-question AP) or ``rank_distance``."""
    column = {"map": "ap", "rank_distance": "rank_distance"}.get(metric)
    if column is None:
        raise ConfigError(f"metric={metric!r}: use 'map' or 'rank_distance'")
    rows = []
    for dataset in datasets:
        for setting in settings:
            for arm_a, arm_b in pairs:
                ma, mb = arm_models(metrics, arm_a), arm_models(metrics, arm_b)
                row = {"subset": "all" if langs is None else "+".join(langs), "dataset": dataset,
                       "setting": setting, "metric": metric, "arm_a": arm_a, "arm_b": arm_b,
                       "n_seeds_a": len(ma), "n_seeds_b": len(mb)}
                if ma and mb:
                    sa = arm_scores(profile, ma, dataset, setting, column, langs)
                    sb = arm_scores(profile, mb, dataset, setting, column, langs)
                    if len(sa) and len(sb):
                        row.update(compare_scores(sa, sb, n_permutations, n_bootstrap))
                rows.append(row)
    return pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)


def _p_column(comp: pd.DataFrame) -> str:
    """The p-value a decision uses: the seed-aware ``p_value``; tables stored before it existed
    carry only the question-level ``p_perm``."""
    return "p_value" if "p_value" in comp.columns and comp["p_value"].notna().any() else "p_perm"


def label_outcomes(comp: pd.DataFrame, level: float = 0.05, margin: float = 0.01,
                   substantial: float = 0.10, family: Sequence[str] = ("metric",)) -> pd.DataFrame:
    """Add ``p_holm`` (Holm within each ``family`` group) and ``outcome`` to a :func:`compare_arms` table."""
    comp = comp.copy()
    pcol = _p_column(comp)
    comp["p_holm"] = np.nan
    comp["outcome"] = "no data"
    have = comp[pcol].notna()
    for _, g in comp[have].groupby(list(family), sort=False):
        comp.loc[g.index, "p_holm"] = S.holm(g[pcol])
    for i, r in comp[have].iterrows():
        if r["metric"] == "map":
            comp.loc[i, "outcome"] = S.compare_verdict(r["diff"], r["ci_low"], r["ci_high"], r["p_holm"],
                                                       level, margin)
        else:  # rank distance relative to arm b's; lower is better
            rel, rel_low, rel_high = (r[c] / r["b_value"] for c in ("diff", "ci_low", "ci_high"))
            if r["p_holm"] < level and rel <= -substantial and rel_high < 0:
                comp.loc[i, "outcome"] = "better"
            elif rel_low > -substantial:
                comp.loc[i, "outcome"] = "not substantial"  # a reduction of that size is ruled out
            else:
                comp.loc[i, "outcome"] = "inconclusive"
    return comp


def claim_of(comp: pd.DataFrame) -> pd.Series:
    """The claim each comparison row serves: 1 (mAP, all languages), 2 (rank distance, all
    languages), 3 (either, never-seen languages)."""
    return pd.Series(np.where(comp["subset"] == "never-seen", 3, np.where(comp["metric"] == "map", 1, 2)),
                     index=comp.index)


def _claim1(comp: pd.DataFrame) -> tuple[str, str]:
    maps = comp[comp["metric"] == "map"]
    if maps.empty or maps["outcome"].eq("no data").any():
        return "inconclusive", "missing arms or questions (needs mono, cross and hybrid models)"
    picked, parts = [], []
    for (ds, setting), g in maps.groupby(["dataset", "setting"], sort=False):
        best = g.iloc[int(np.argmax(g["b_value"].to_numpy()))]  # the better baseline
        picked.append(best["outcome"])
        parts.append(f"{ds}/{setting}: hybrid {best['a_value']:.3f} vs {best['arm_b']} {best['b_value']:.3f} "
                     f"(diff {best['diff']:+.3f} [{best['ci_low']:+.3f}, {best['ci_high']:+.3f}], "
                     f"p_holm={best['p_holm']:.2g}: {best['outcome']})")
    return S.claim_verdict(picked), "; ".join(parts)


def _claim2(comp: pd.DataFrame) -> tuple[str, str]:
    rd = comp[comp["metric"] == "rank_distance"]
    if rd.empty or rd["outcome"].eq("no data").any():
        return "inconclusive", "missing arms or questions (needs mono and hybrid models)"
    parts = [f"{r['dataset']}: hybrid {r['a_value']:.1f} vs mono {r['b_value']:.1f} "
             f"({r['diff'] / r['b_value']:+.1%} [{r['ci_low'] / r['b_value']:+.1%}, "
             f"{r['ci_high'] / r['b_value']:+.1%}], p_holm={r['p_holm']:.2g}: {r['outcome']})"
             for _, r in rd.iterrows()]
    failed = rd["outcome"].isin(["not substantial"])
    verdict = S.claim_verdict(np.where(failed, "worse", rd["outcome"]), accept=("better",))
    return verdict, "; ".join(parts)


def _verdicts(everything: pd.DataFrame, unseen: pd.DataFrame) -> pd.DataFrame:
    v1, e1 = _claim1(everything)
    v2, e2 = _claim2(everything)
    u1, f1 = _claim1(unseen)
    u2, f2 = _claim2(unseen)
    as_outcome = {"supported": "better", "not supported": "worse"}
    v3 = S.claim_verdict([as_outcome.get(v, "inconclusive") for v in (u1, u2)], accept=("better",))
    e3 = f"claim 1 on el/th/tr: {u1} ({f1}); claim 2 on el/th/tr: {u2} ({f2})"
    return pd.DataFrame({"claim": [1, 2, 3], "statement": [CLAIMS[1], CLAIMS[2], CLAIMS[3]],
                         "verdict": [v1, v2, v3], "evidence": [e1, e2, e3]})


def verdicts_from_comparisons(comp: pd.DataFrame, level: float = 0.05, margin: float = 0.01,
                              substantial: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verdicts on claims 1-3 from the claim comparisons (a :func:`compare_arms` table with a
    ``subset`` column, ``all`` and ``never-seen``): one Holm family per claim, the outcome rule,
    the claims. Stored comparisons can be relabelled with it (no recomputation). The returned
    comparisons carry ``claim`` and ``margin`` (mAP rows: ``margin`` in mAP; rank-distance rows:
    ``substantial``, a share of the baseline's rank distance)."""
    comp = comp.drop(columns=["p_holm", "outcome", "claim", "margin", "family"], errors="ignore")
    comp = label_outcomes(comp.assign(claim=claim_of(comp)), level, margin, substantial, family=("claim",))
    comp["margin"] = np.where(comp["metric"] == "map", margin, substantial)
    empty = comp.iloc[:0]
    parts = {subset: g for subset, g in comp.groupby("subset", sort=False)}
    return _verdicts(parts.get("all", empty), parts.get("never-seen", empty)), comp


# comparisons.csv: the published columns first, then what they were computed from
_FILE_NAMES = {"arm_a": "a", "arm_b": "b", "diff": "estimate"}
COMPARISONS_FILE_COLUMNS = ["claim", "dataset", "setting", "a", "b", "estimate", "ci_low", "ci_high", "p_value",
                            "p_holm", "margin", "outcome", "metric", "subset", "a_value", "b_value", "n_seeds_a",
                            "n_seeds_b", "se", "se_seeds", "df", "seed_variance_known", "ci_low_q", "ci_high_q",
                            "p_perm", "p_t", "n_questions", "n_items", "method"]


def comparisons_file(comp: pd.DataFrame) -> pd.DataFrame:
    """The study's one table of comparisons (``comparisons.csv``), from a labelled claim-comparison
    table (:func:`verdicts_from_comparisons`): one row per comparison, the published columns first."""
    seed_aware = "p_value" in comp.columns and comp["p_value"].notna().any()
    out = comp.rename(columns=_FILE_NAMES)
    if not seed_aware:  # a table computed before the seed-aware test existed
        out["p_value"] = comp["p_perm"]
        out["seed_variance_known"] = False
    out["method"] = ("seed-aware t interval and test (seeds and questions)" if seed_aware else
                     "question bootstrap and sign-flip test on seed-averaged scores")
    return out.reindex(columns=COMPARISONS_FILE_COLUMNS)


def read_comparisons(path) -> pd.DataFrame:
    """``comparisons.csv`` back in the column names of :func:`compare_arms` (for relabelling)."""
    frame = pd.read_csv(path).rename(columns={v: k for k, v in _FILE_NAMES.items()})
    if frame["method"].str.startswith("question").all():
        frame = frame.drop(columns=["p_value"])  # the stored p_value was the question-level p_perm
    return frame.drop(columns=["method"])


def label_pairwise(tests: pd.DataFrame, claims: pd.DataFrame, level: float = 0.05, margin: float = 0.01,
                   substantial: float = 0.10) -> pd.DataFrame:
    """Label the all-pairs table so it cannot disagree with the claim comparisons.

    Rows that repeat a claim comparison (subset ``all``) take ``p_holm`` and
    ``outcome`` from ``claims`` (``family`` = ``claim``); the other rows form
    one exploratory Holm family per metric (``family`` = ``exploratory``).
    """
    keys = ["dataset", "setting", "metric", "arm_a", "arm_b"]
    claim_rows = claims[claims["subset"] == "all"].set_index(keys)[["p_holm", "outcome"]]
    tests = tests.drop(columns=["p_holm", "outcome", "family"], errors="ignore")
    in_claims = tests.set_index(keys).index.isin(claim_rows.index)
    other = label_outcomes(tests[~in_claims], level, margin, substantial).assign(family="exploratory")
    mine = tests[in_claims].join(claim_rows, on=keys).assign(family="claim")
    return pd.concat([mine, other]).loc[tests.index]


def check_claims(profile: str, metrics: pd.DataFrame, datasets: Sequence[str] = DATASETS, level: float = 0.05,
                 margin: float = 0.01, substantial: float = 0.10, n_permutations: int = 10_000,
                 n_bootstrap: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verdicts on claims 1-3 and the comparisons behind them (see the module docstring).

    ``metrics`` should hold one backbone size (filter by ``layers`` first).
    Returns ``(verdicts, comparisons)``: verdicts has ``claim, statement,
    verdict, evidence``; comparisons is :func:`compare_arms` plus
    ``p_holm`` and ``outcome``.
    """
    datasets = [d for d in datasets if d in set(metrics["dataset"])]
    kw = dict(n_permutations=n_permutations, n_bootstrap=n_bootstrap)
    parts = []
    for subset, ds, langs in (("all", datasets, None), ("never-seen", [d for d in datasets if d == "xquad_r"],
                                                        ZERO_SHOT_LANGS)):
        parts.append(pd.concat([
            compare_arms(profile, metrics, [("hybrid", "mono"), ("hybrid", "cross")], ds, metric="map",
                         langs=langs, **kw),
            compare_arms(profile, metrics, [("hybrid", "mono")], ds, ("multi",), "rank_distance", langs, **kw)],
            ignore_index=True).assign(subset=subset))
    return verdicts_from_comparisons(pd.concat(parts, ignore_index=True), level, margin, substantial)


def relabel(profile: str, level: float = 0.05, margin: float = 0.01, substantial: float = 0.10) -> pd.DataFrame:
    """Re-derive ``verdicts.csv``, the outcomes of ``comparisons.csv`` and the claim rows of
    ``04_paired_tests.csv`` from the stored comparisons (after a change of the verdict rule)."""
    from lib.paths import atomic_write, results_dir

    out = results_dir(profile)
    verdicts, claims = verdicts_from_comparisons(read_comparisons(out / "comparisons.csv"), level, margin,
                                                 substantial)
    tests = label_pairwise(pd.read_csv(out / "04_paired_tests.csv"), claims, level, margin, substantial)
    for name, table in (("comparisons.csv", comparisons_file(claims)), ("04_paired_tests.csv", tests),
                        ("verdicts.csv", verdicts)):
        with atomic_write(out / name) as tmp:
            table.to_csv(tmp, index=False)
    return verdicts


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Relabel a profile's stored comparisons with the verdict rule.")
    ap.add_argument("command", choices=["relabel"])
    ap.add_argument("profile")
    ap.add_argument("--margin", type=float, default=0.01)
    args = ap.parse_args()
    print(relabel(args.profile, margin=args.margin).to_string(index=False))
