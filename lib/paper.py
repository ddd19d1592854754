"""The test of the paper's claims: comparisons of arms, their outcomes, the verdicts, comparisons.csv.

The published numbers and our results in the paper's table layouts are in
:mod:`lib.paper_tables` (arms: ``lib.paper_tables.arm_label``).

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
from lib.data_files import ZERO_SHOT_LANGS
from lib.errors import ConfigError
from lib.evaluation import DATASETS, SETTINGS, load_per_query
from lib.paper_tables import arm_models
from lib.paths import atomic_write, results_dir

CLAIMS = {
    1: "hybrid matches or beats the better of X-X-mono and X-Y in every setting (mAP)",
    2: "hybrid reduces language bias (multilingual rank distance) against X-X-mono substantially",
    3: "the effect holds for languages never seen in training (el, th, tr)",
}


# --------------------------------------------------------------------------
# Comparisons and claims


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
