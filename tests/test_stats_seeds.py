"""Seed-aware comparison of strategies and the one verdict rule, checked on simulated data with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lib.stats as S
from lib import results as results_store
from lib.stats_calibration import calibrate, simulate

R = 200  # simulated studies per check
# binomial bounds: 3 standard deviations around the nominal rate over R replicates
REJECT_MAX = 0.05 + 3 * np.sqrt(0.05 * 0.95 / R)
COVER_MIN = 0.95 - 3 * np.sqrt(0.05 * 0.95 / R)


@pytest.mark.parametrize("n_seeds, sd_seed", [(3, 0.01), (5, 0.02), (3, 0.0)])
def test_null_rejection_rate_and_coverage(n_seeds, sd_seed):
    rng = np.random.default_rng(7)
    rejected = covered = 0
    for _ in range(R):
        a, b, langs, items = simulate(rng, n_seeds, sd_seed)
        res = S.seed_question_test(a, b, langs, items)
        rejected += res["p_value"] < 0.05
        covered += res["low"] <= 0 <= res["high"]
    assert rejected / R <= REJECT_MAX
    assert covered / R >= COVER_MIN


def test_coverage_of_a_nonzero_difference():
    rng = np.random.default_rng(8)
    covered = 0
    for _ in range(R):
        a, b, langs, items = simulate(rng, 3, 0.01, true_diff=0.02)
        res = S.seed_question_test(a, b, langs, items)
        covered += res["low"] <= 0.02 <= res["high"]
    assert covered / R >= COVER_MIN


def test_ignoring_seeds_is_overconfident():
    """The reason for the design: averaging seeds first and testing over questions only
    rejects a true null far too often when seeds differ; the seed-aware test does not."""
    rng = np.random.default_rng(9)
    naive = aware = 0
    for _ in range(R):
        a, b, langs, items = simulate(rng, 3, 0.02)
        naive += S.paired_t_test(a.mean(0), b.mean(0), clusters=items)["p_value"] < 0.05
        aware += S.seed_question_test(a, b, langs, items)["p_value"] < 0.05
    assert naive / R > 0.3
    assert aware / R <= REJECT_MAX


def test_seed_question_test_matches_hand_computation():
    """One seed per arm, two groups, clusters of two: the cluster-robust variance by hand."""
    a = np.array([[0.9, 0.5, 0.7, 0.2, 0.4, 0.8]])
    b = np.array([[0.6, 0.5, 0.9, 0.1, 0.1, 0.7]])
    groups = np.array(["x", "y", "x", "y", "x", "y"])
    clusters = np.array([0, 0, 1, 1, 2, 2])
    d = a[0] - b[0]
    w = np.full(6, 1 / 6)  # two groups of three: 1 / (2 * 3)
    point = np.sum(w * d)
    gm = {k: d[groups == k].mean() for k in "xy"}
    per_cluster = [sum(w[i] * (d[i] - gm[groups[i]]) for i in range(6) if clusters[i] == c) for c in range(3)]
    v = 3 / 2 * sum(x ** 2 for x in per_cluster)
    res = S.seed_question_test(a, b, groups, clusters)
    assert res["point"] == pytest.approx(point)
    assert res["se"] == pytest.approx(np.sqrt(v))
    assert res["df"] == pytest.approx(2)  # only the question part: clusters - 1
    assert not res["seed_variance_known"]


def test_seed_variance_widens_the_interval():
    rng = np.random.default_rng(3)
    a, b, langs, items = simulate(rng, 3, 0.0)
    shifted = a + np.array([[-0.03], [0.0], [0.03]])  # same mean, seeds disagree
    narrow = S.seed_question_test(a, b, langs, items)
    wide = S.seed_question_test(shifted, b, langs, items)
    assert wide["point"] == pytest.approx(narrow["point"])
    assert wide["se_seeds"] > 5 * narrow["se_seeds"]
    assert wide["high"] - wide["low"] > 2 * (narrow["high"] - narrow["low"])


def test_two_stage_bootstrap_sees_both_stages():
    rng = np.random.default_rng(4)
    a, b, langs, items = simulate(rng, 3, 0.0)
    base = S.seed_question_bootstrap(a, b, langs, items, n_bootstrap=1000)
    shifted = S.seed_question_bootstrap(a + np.array([[-0.03], [0.0], [0.03]]), b, langs, items,
                                        n_bootstrap=1000)
    assert base["low"] < base["point"] < base["high"]
    assert shifted["se"] > 2 * base["se"]
    # question stage alone: close to the analytic cluster-robust standard error
    one = S.seed_question_bootstrap(a[:1], b[:1], langs, items, n_bootstrap=2000)
    analytic = S.seed_question_test(a[:1], b[:1], langs, items)
    assert one["se"] == pytest.approx(analytic["se"], rel=0.15)


def test_mismatched_questions_are_refused():
    with pytest.raises(Exception, match="same questions"):
        S.seed_question_test(np.zeros((2, 5)), np.zeros((2, 6)))


# ------------------------------------------------------------- the verdict rule


@pytest.mark.parametrize("diff, low, high, p, expected", [
    (0.003, 0.001, 0.005, 0.001, "equivalent"),      # significant but inside the margin
    (-0.003, -0.005, -0.002, 0.001, "equivalent"),   # the same on the losing side
    (0.001, -0.004, 0.006, 0.6, "equivalent"),       # not significant, inside the margin
    (0.02, 0.012, 0.028, 0.001, "better"),
    (0.012, 0.004, 0.020, 0.001, "better"),          # excludes 0, reaches beyond the margin
    (-0.012, -0.015, -0.009, 0.001, "worse"),
    (0.012, 0.004, 0.020, 0.2, "inconclusive"),      # interval excludes 0 but the (Holm) p does not pass
    (0.001, -0.02, 0.03, 0.6, "inconclusive"),
])
def test_verdict_rule_every_branch(diff, low, high, p, expected):
    assert S.compare_verdict(diff, low, high, p, margin=0.01) == expected


def test_verdict_rule_lower_is_better():
    assert S.compare_verdict(-30, -40, -20, 0.001, higher_is_better=False) == "better"
    assert S.compare_verdict(30, 20, 40, 0.001, higher_is_better=False) == "worse"


@pytest.mark.parametrize("true_diff, expected, share", [(0.0, "equivalent", 0.9), (0.03, "better", 0.9)])
def test_verdicts_on_simulated_studies(true_diff, expected, share):
    """A true difference of 0 is called equivalent (margin 0.01) in >= 90% of studies; 0.03 is better."""
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(R):
        a, b, langs, items = simulate(rng, 5, 0.002, true_diff=true_diff, sd_noise=0.03)
        res = S.seed_question_test(a, b, langs, items)
        hits += S.compare_verdict(res["point"], res["low"], res["high"], res["p_value"], margin=0.01) == expected
    assert hits / R >= share


# ------------------------------------------------------------- the claim pipeline


def _arms(tmp_path, monkeypatch, seed_shifts_hybrid):
    from lib import evaluation as E
    from test_stats import _write_arm

    monkeypatch.setattr(E, "results_dir", lambda profile: tmp_path / profile)
    monkeypatch.setattr(results_store, "results_dir", lambda profile: tmp_path / profile)  # the evaluation manifest
    rng = np.random.default_rng(0)
    arms = [_write_arm("unit", f"mono_s{s}", "mono", 1.0, 0.0, 400, rng) for s in range(3)]
    arms += [_write_arm("unit", f"cross_s{s}", "cross", 0.0, 0.0, 300, rng) for s in range(3)]
    arms += [_write_arm("unit", f"hybrid_a0.5_s{s}", "hybrid", 0.5, shift, 200, rng)
             for s, shift in enumerate(seed_shifts_hybrid)]
    return pd.DataFrame(arms)


def test_seed_disagreement_widens_the_claim_intervals(tmp_path, monkeypatch):
    from lib import paper

    calm = paper.check_claims("unit", _arms(tmp_path / "a", monkeypatch, [0.02, 0.02, 0.02]),
                              n_permutations=200, n_bootstrap=200)[1]
    noisy = paper.check_claims("unit", _arms(tmp_path / "b", monkeypatch, [-0.04, 0.02, 0.08]),
                               n_permutations=200, n_bootstrap=200)[1]
    pick = lambda c: c[(c["subset"] == "all") & (c["metric"] == "map") & (c["arm_b"] == "mono")]  # noqa: E731
    width = lambda c: float((pick(c)["ci_high"] - pick(c)["ci_low"]).mean())  # noqa: E731
    assert width(noisy) > 3 * width(calm)
    assert (pick(noisy)["se_seeds"] > pick(noisy)["se"] * 0.5).all()  # the seeds dominate the uncertainty
    assert pick(calm)["outcome"].eq("better").all()
    assert not pick(noisy)["outcome"].eq("better").any()  # +0.02 on average, but the seeds disagree


def test_comparisons_file_round_trip_and_one_family_per_claim(tmp_path, monkeypatch):
    from lib import paper

    verdicts, comp = paper.check_claims("unit", _arms(tmp_path, monkeypatch, [0.02, 0.03, 0.025]),
                                        n_permutations=200, n_bootstrap=200)
    table = paper.comparisons_file(comp)
    assert table.columns[:12].tolist() == ["claim", "dataset", "setting", "a", "b", "estimate", "ci_low",
                                           "ci_high", "p_value", "p_holm", "margin", "outcome"]
    assert sorted(table["claim"].unique()) == [1, 2, 3]
    for claim, g in table.groupby("claim"):  # Holm within each claim's family
        assert np.allclose(g["p_holm"], S.holm(g["p_value"]))
    path = tmp_path / "comparisons.csv"
    table.to_csv(path, index=False)
    again_verdicts, again = paper.verdicts_from_comparisons(paper.read_comparisons(path))
    assert again_verdicts["verdict"].tolist() == verdicts["verdict"].tolist()
    assert again["outcome"].tolist() == comp["outcome"].tolist()


def test_one_arm_interval_is_the_test_against_a_constant_zero():
    rng = np.random.default_rng(3)
    a = rng.random((3, 40))
    groups, clusters = np.repeat(["x", "y"], 20), np.arange(40) // 2
    one = S.seed_question_interval(a, groups, clusters)
    both = S.seed_question_test(a, np.zeros((1, 40)), groups, clusters)
    assert one == both and one["point"] == pytest.approx(S.macro_mean(a.mean(0), groups))


def test_calibration_table_reports_every_method():
    """The calibration behind the README's coverage figures: one row per scenario and method, shares that
    add up, and the seed-blind method rejecting a true null far more often than the seed-aware one."""
    table = calibrate([{"n_seeds": 3, "sd_seed": 0.02, "true_diff": 0.0}], replicates=40, n_bootstrap=100)
    assert list(table["method"]) == ["seed-aware t", "two-stage bootstrap", "questions only (seeds averaged)"]
    shares = table[["share_better", "share_worse", "share_equivalent", "share_inconclusive"]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    by = table.set_index("method")
    assert by.loc["questions only (seeds averaged)", "rejection_rate"] > 3 * by.loc["seed-aware t", "rejection_rate"]
