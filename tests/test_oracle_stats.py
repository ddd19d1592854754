"""Calibration of the paired statistics (lib/stats.py and its users lib/paper.py, lib/scaling.py).

Synthetic per-question differences with clusters (items whose questions are
translations, so strongly correlated) and groups (languages of unequal
size). Checked:

- under the null, the sign-flip test rejects at 0.05 in a share of a few
  hundred replicates that lies within binomial bounds of 0.05, and the
  bootstrap interval covers the true macro mean in a share within binomial
  bounds of 0.95; with a real shift the test rejects nearly always;
- on small clustered cases, the sign-flip p-value and the bootstrap
  percentiles agree with exact enumeration of every sign vector / every
  cluster resample;
- ``paper.compare_scores`` and ``scaling_stats.gaps`` (the notebooks' entry
  points) are calibrated the same way, so they pass the item clusters on.

Bounds are 99.9 % binomial intervals, so a correct implementation fails one
of these checks about once in a thousand runs of a new seed; the seeds are fixed.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lib import stats as S

REPLICATES = 300
LANGS = np.array(["en", "de", "el", "th"])


def binomial_ok(count: int, n: int, p: float) -> bool:
    low, high = sps.binom.interval(0.999, n, p)
    return low <= count <= high


def clustered_sample(rng, n_items: int = 40, shift: float = 0.0, keep: float = 0.85):
    """Differences d = shift + item effect (sd 1) + row noise (sd 0.3); each item has a question in
    most languages (rows dropped at random, so groups have unequal sizes)."""
    items = np.repeat(np.arange(n_items), len(LANGS))
    groups = np.tile(LANGS, n_items)
    mask = rng.random(len(items)) < keep
    items, groups = items[mask], groups[mask]
    d = shift + rng.normal(0, 1.0, n_items)[items] + rng.normal(0, 0.3, len(items))
    return d, groups, items


def macro(values, groups) -> float:
    """Mean over groups of the group means, written out."""
    return float(np.mean([np.mean(values[groups == g]) for g in np.unique(groups)]))


# ------------------------------------------------------------ null calibration


def test_sign_flip_rejection_rate_under_a_clustered_null():
    rng = np.random.default_rng(11)
    p_flip, p_t = [], []
    for _ in range(REPLICATES):
        d, groups, items = clustered_sample(rng)
        p_flip.append(S.paired_randomization_test(d, np.zeros_like(d), groups=groups, clusters=items,
                                                  n_permutations=400, seed=int(rng.integers(1 << 30)))["p_value"])
        p_t.append(S.paired_t_test(d, np.zeros_like(d), clusters=items)["p_value"])
    for p in (p_flip, p_t):
        rejected = int(np.sum(np.asarray(p) <= 0.05))
        assert binomial_ok(rejected, REPLICATES, 0.05), rejected
    # p-values of an exact test are about uniform: a quarter of them below 0.25
    assert binomial_ok(int(np.sum(np.asarray(p_flip) <= 0.25)), REPLICATES, 0.25)


def test_sign_flip_power_with_a_real_shift():
    rng = np.random.default_rng(12)
    rejected = 0
    for _ in range(100):
        d, groups, items = clustered_sample(rng, shift=0.8)
        rejected += S.paired_randomization_test(d, np.zeros_like(d), groups=groups, clusters=items,
                                                n_permutations=400)["p_value"] <= 0.05
    assert rejected >= 90


def test_cluster_bootstrap_coverage():
    rng = np.random.default_rng(13)
    truth = 0.3
    covered = 0
    for _ in range(REPLICATES):
        d, groups, items = clustered_sample(rng, n_items=60, shift=truth)
        ci = S.bootstrap_ci(d, groups=groups, clusters=items, n_bootstrap=400, seed=int(rng.integers(1 << 30)))
        assert ci["point"] == pytest.approx(macro(d, groups))
        covered += ci["low"] <= truth <= ci["high"]
    assert binomial_ok(covered, REPLICATES, 0.95), covered


def test_grouped_bootstrap_coverage_without_clusters():
    """Independent questions in languages of unequal size and different means: the macro mean is covered."""
    rng = np.random.default_rng(14)
    means = {"en": 0.2, "de": 0.5, "el": 0.6, "th": 0.9}
    sizes = {"en": 80, "de": 40, "el": 30, "th": 20}
    groups = np.concatenate([[g] * n for g, n in sizes.items()])
    mu = np.array([means[g] for g in groups])
    truth = float(np.mean(list(means.values())))
    covered = 0
    for _ in range(REPLICATES):
        values = mu + rng.normal(0, 0.3, len(groups))
        ci = S.bootstrap_ci(values, groups=groups, n_bootstrap=400, seed=int(rng.integers(1 << 30)))
        covered += ci["low"] <= truth <= ci["high"]
    assert binomial_ok(covered, REPLICATES, 0.95), covered


# ------------------------------------------------------------ exact enumeration


def small_clustered_case():
    """8 items, 3 languages of unequal size, items with 1 to 3 questions."""
    items = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 4, 5, 5, 6, 6, 6, 7, 7])
    groups = np.array(["x", "y", "z", "x", "y", "x", "x", "y", "z", "y", "x", "z", "x", "y", "z", "x", "y"])
    d = np.array([0.4, 0.3, 0.5, -0.1, 0.05, 0.2, 0.35, 0.1, 0.3, -0.2, 0.15, 0.25, 0.05, 0.3, 0.1, -0.05, 0.2])
    return d, groups, items


def test_sign_flip_p_value_equals_exact_enumeration_with_clusters_and_groups():
    d, groups, items = small_clustered_case()
    n_items = items.max() + 1
    observed = macro(d, groups)
    flipped = [macro(d * np.array(signs)[items], groups) for signs in itertools.product([-1, 1], repeat=n_items)]
    exact = np.mean(np.abs(flipped) >= abs(observed) - 1e-12)
    res = S.paired_randomization_test(d, np.zeros_like(d), groups=groups, clusters=items, n_permutations=40_000,
                                      seed=3)
    assert res["statistic"] == pytest.approx(observed)
    assert res["n_clusters"] == n_items
    assert 0.02 < exact < 0.5  # a case where the answer is neither 0 nor 1
    assert res["p_value"] == pytest.approx(exact, abs=0.01)


def test_cluster_bootstrap_percentiles_equal_exact_enumeration():
    """4 items: all 4**4 ordered resamples of items are equally likely; the interval's ends sit at the
    5 % and 95 % points of that exact distribution."""
    items = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    groups = np.array(["x", "y", "z", "x", "z", "x", "y", "z", "y", "z"])
    values = np.array([0.9, 0.1, 0.5, 0.2, 0.7, 0.4, 0.8, 0.3, 0.6, 0.0])
    exact = []
    for draw in itertools.product(range(4), repeat=4):
        rows = np.concatenate([np.flatnonzero(items == c) for c in draw])
        present = [g for g in np.unique(groups) if np.any(groups[rows] == g)]
        exact.append(np.mean([values[rows][groups[rows] == g].mean() for g in present]))
    exact = np.sort(exact)
    ci = S.bootstrap_ci(values, groups=groups, clusters=items, n_bootstrap=20_000, level=0.90, seed=5)
    for end, q in ((ci["low"], 0.05), (ci["high"], 0.95)):
        below, at_most = np.mean(exact < end - 1e-12), np.mean(exact <= end + 1e-12)
        assert below <= q + 0.01 and at_most >= q - 0.01, (end, q, below, at_most)


# -------------------------------------------------- the notebooks' entry points


def null_arms(rng, n_items: int = 30):
    """Per-question scores of two arms under the null: a and b exchangeable within each item."""
    d, groups, items = clustered_sample(rng, n_items=n_items)
    base = rng.random(len(d))
    a, b = base + d / 2, base - d / 2
    swap = rng.random(n_items)[items] < 0.5  # exchangeable arms
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    qid = [f"{g}/{i}" for g, i in zip(groups, items)]
    return a, b, groups, items.astype(str), qid


def test_compare_scores_and_gaps_are_calibrated_under_a_clustered_null():
    from lib import paper
    from lib import scaling_stats

    rng = np.random.default_rng(15)
    n = 150
    rejected = {"paper": 0, "scaling": 0}
    covered = {"paper": 0, "scaling": 0}
    n_items = []
    for _ in range(n):
        a, b, groups, items, qid = null_arms(rng)
        fa = pd.DataFrame({"value": a, "cell": groups, "item_id": items}, index=qid)
        fb = pd.DataFrame({"value": b, "cell": groups, "item_id": items}, index=qid)
        res = paper.compare_scores(fa, fb, n_permutations=300, n_bootstrap=300, seed=int(rng.integers(1 << 30)))
        n_items.append(res["n_items"] - len(np.unique(items)))
        assert res["diff"] == pytest.approx(macro(a - b, groups))
        rejected["paper"] += res["p_perm"] <= 0.05
        covered["paper"] += res["ci_low"] <= 0 <= res["ci_high"]
        for key in ("p_value", "p_t"):  # the decision test (seed x question) and the cluster t-test
            if key in res:
                rejected[f"paper {key}"] = rejected.get(f"paper {key}", 0) + (res[key] <= 0.05)
        if "ci_low_q" in res:  # the question-only cluster bootstrap kept for reference
            covered["paper q"] = covered.get("paper q", 0) + (res["ci_low_q"] <= 0 <= res["ci_high_q"])
        frame = pd.concat([pd.DataFrame({"model": m, "query_id": qid, "item_id": items, "group": "all",
                                         "cell": groups, "v": v}) for m, v in (("h", a), ("m", b))])
        gap = scaling_stats.gaps(frame, "v", [("h", "m")]).iloc[0]
        assert gap["estimate"] == pytest.approx(macro(a - b, groups))
        rejected["scaling"] += gap["p_value"] <= 0.05
        covered["scaling"] += gap["low"] <= 0 <= gap["high"]
    for name in rejected:
        assert binomial_ok(rejected[name], n, 0.05), (name, rejected)
    for name in covered:
        assert binomial_ok(covered[name], n, 0.95), (name, covered)
    assert set(n_items) == {0}  # items, not questions, are the units


def seed_arms(rng, n_seeds: int, n_items: int = 30):
    """Null: both strategies' seeds come from one distribution (seed effect sd 0.05 on every question)."""
    d, groups, items = clustered_sample(rng, n_items=n_items)
    base = rng.random(len(d)) + 0.2 * d  # questions differ in difficulty, correlated within items
    a = base + rng.normal(0, 0.05, (n_seeds, 1)) + rng.normal(0, 0.1, (n_seeds, len(d)))
    b = base + rng.normal(0, 0.05, (n_seeds, 1)) + rng.normal(0, 0.1, (n_seeds, len(d)))
    return a, b, groups, items


@pytest.mark.skipif(not hasattr(S, "seed_question_test"), reason="lib.stats has no seed_question_test")
def test_seed_question_test_is_calibrated_under_a_null_with_seed_variance():
    """The seed x question test (notebook 04's decision statistic): rejection at 0.05 and coverage of 0
    within binomial bounds when the two strategies differ only by their seeds' luck."""
    rng = np.random.default_rng(16)
    rejected = covered = 0
    for _ in range(REPLICATES):
        a, b, groups, items = seed_arms(rng, n_seeds=3)
        res = S.seed_question_test(a, b, groups, items)
        assert res["point"] == pytest.approx(macro(a.mean(0) - b.mean(0), groups))
        rejected += res["p_value"] <= 0.05
        covered += res["low"] <= 0 <= res["high"]
    assert binomial_ok(rejected, REPLICATES, 0.05), rejected
    assert binomial_ok(covered, REPLICATES, 0.95), covered
