"""Statistics on synthetic data whose answer is known."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lib import results as results_store
from lib import stats as S
from lib.errors import DataError


def test_sign_flip_p_value_matches_exact_enumeration():
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05, -0.2, 0.35, 0.15])
    observed = d.mean()
    flips = np.array(list(itertools.product([-1, 1], repeat=len(d))))
    exact = np.mean(np.abs(flips @ d / len(d)) >= abs(observed) - 1e-12)
    res = S.paired_randomization_test(d, np.zeros_like(d), n_permutations=40_000, seed=1)
    assert res["statistic"] == pytest.approx(observed)
    assert res["p_value"] == pytest.approx(exact, abs=0.01)


def test_randomization_test_separates_a_real_shift_from_noise():
    rng = np.random.default_rng(0)
    b = rng.random(400)
    noise = rng.normal(0, 0.1, 400)
    assert S.paired_randomization_test(b + noise + 0.05, b, n_permutations=2000)["p_value"] < 0.01


@pytest.mark.parametrize("shift", [0.0, 0.005, 0.01])
def test_sign_flip_p_value_matches_its_normal_approximation(shift):
    """With 400 independent differences the sign-flip statistic sum(s_i d_i) has mean 0 and variance
    sum(d_i^2), and is close to normal: p = 2 (1 - Phi(|sum d| / sqrt(sum d^2)))."""
    rng = np.random.default_rng(7)
    b = rng.random(400)
    a = b + rng.normal(shift, 0.1, 400)
    d = a - b
    want = 2 * sps.norm.sf(abs(d.sum()) / np.sqrt(np.sum(d ** 2)))
    got = S.paired_randomization_test(a, b, n_permutations=20_000, seed=2)
    assert got["statistic"] == pytest.approx(d.mean())
    assert got["p_value"] == pytest.approx(want, abs=0.02)
    swapped = S.paired_randomization_test(b, a, n_permutations=20_000, seed=2)
    assert swapped["statistic"] == pytest.approx(-d.mean()) and swapped["p_value"] == got["p_value"]


def test_clusters_make_the_test_honest_about_duplicated_questions():
    """The same 30 differences copied 11 times (11 languages of one item) are 30 units, not 330."""
    rng = np.random.default_rng(1)
    d = np.repeat(rng.normal(0.02, 0.1, 30), 11)
    items = np.repeat(np.arange(30), 11)
    naive = S.paired_randomization_test(d, np.zeros_like(d), n_permutations=4000)["p_value"]
    clustered = S.paired_randomization_test(d, np.zeros_like(d), clusters=items, n_permutations=4000)["p_value"]
    assert clustered > naive
    t_clustered = S.paired_t_test(d, np.zeros_like(d), clusters=items)
    assert t_clustered["df"] == 29
    assert t_clustered["p_value"] == pytest.approx(sps.ttest_1samp(d[::11], 0).pvalue)


def test_paired_t_test_equals_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.random(50), rng.random(50)
    assert S.paired_t_test(a, b)["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)


def test_macro_mean_weights_languages_equally():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    groups = np.array(["en", "en", "en", "de"])
    assert S.macro_mean(values, groups) == pytest.approx(0.5)
    res = S.paired_randomization_test(values, np.zeros(4), groups=groups, n_permutations=100)
    assert res["statistic"] == pytest.approx(0.5)


def test_bootstrap_interval_covers_the_truth_and_has_the_right_width():
    rng = np.random.default_rng(3)
    x = rng.normal(0.6, 0.2, 4000)
    ci = S.bootstrap_ci(x, n_bootstrap=2000, seed=0)
    assert ci["low"] < 0.6 < ci["high"]
    assert ci["high"] - ci["low"] == pytest.approx(2 * 1.96 * 0.2 / np.sqrt(4000), rel=0.15)


def test_bootstrap_macro_point_and_cluster_width():
    rng = np.random.default_rng(4)
    groups = np.array(["x"] * 100 + ["y"] * 300)
    values = np.where(groups == "x", 0.2, 0.8) + rng.normal(0, 0.05, 400)
    ci = S.bootstrap_ci(values, groups=groups, n_bootstrap=500)
    assert ci["point"] == pytest.approx(np.mean([values[:100].mean(), values[100:].mean()]))
    assert ci["low"] < ci["point"] < ci["high"]
    copies = np.repeat(rng.normal(0, 1, 50), 8)
    items = np.repeat(np.arange(50), 8)
    rows = S.bootstrap_ci(copies, n_bootstrap=1000)
    clustered = S.bootstrap_ci(copies, clusters=items, n_bootstrap=1000)
    ratio = (clustered["high"] - clustered["low"]) / (rows["high"] - rows["low"])
    assert ratio == pytest.approx(np.sqrt(8), rel=0.25)


def test_align_refuses_mismatched_question_sets():
    a = pd.Series([0.1, 0.2], index=["q1", "q2"])
    with pytest.raises(DataError, match="same questions"):
        S.align(a, pd.Series([0.1, 0.3], index=["q1", "q3"]))
    with pytest.raises(DataError, match="duplicates"):
        S.align(a, pd.Series([0.1, 0.3], index=["q1", "q1"]))
    paired = S.align(a, pd.Series([0.5, 0.4], index=["q2", "q1"]))
    assert paired.loc["q1", "b"] == 0.4


def test_nan_values_are_refused():
    with pytest.raises(DataError, match="NaN"):
        S.paired_randomization_test([0.1, np.nan], [0.2, 0.3])


def test_seed_spread():
    frame = pd.DataFrame({"strategy": ["mono"] * 3 + ["cross"] * 2, "seed": [0, 1, 2, 0, 1],
                          "value": [0.70, 0.72, 0.74, 0.60, 0.62]})
    out = S.seed_spread(frame, ["strategy"]).set_index("strategy")
    assert out.loc["mono", "mean"] == pytest.approx(0.72)
    assert out.loc["mono", "std"] == pytest.approx(0.02)
    assert (out.loc["cross", "min"], out.loc["cross", "max"], out.loc["cross", "n_seeds"]) == (0.60, 0.62, 2)


def test_holm():
    np.testing.assert_allclose(S.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(S.holm([0.5, 0.9]), [1.0, 1.0])


def test_verdicts():
    assert S.compare_verdict(0.02, 0.01, 0.03, 0.001) == "better"
    assert S.compare_verdict(-0.02, -0.03, -0.01, 0.001) == "worse"
    assert S.compare_verdict(-30, -40, -20, 0.001, higher_is_better=False) == "better"
    assert S.compare_verdict(0.001, -0.004, 0.006, 0.6, margin=0.01) == "equivalent"
    assert S.compare_verdict(0.001, -0.02, 0.03, 0.6, margin=0.01) == "inconclusive"
    assert S.claim_verdict(["better", "equivalent"]) == "supported"
    assert S.claim_verdict(["better", "worse"]) == "not supported"
    assert S.claim_verdict(["better", "inconclusive"]) == "inconclusive"


# --------------------------------------------------------------------------
# Claim verdicts on synthetic per-question files


def _write_arm(profile, model, strategy, alpha, ap_shift, rd_scale, rng):
    from lib import evaluation as E

    langs = ["en", "de", "el", "th", "tr"]
    rows = []
    for item in range(60):
        base = 0.1 + (item * 0.37) % 0.8  # the same questions are as hard for every arm
        for q in langs:
            for d in langs + ["all"]:
                setting = "multi" if d == "all" else ("mono" if d == q else "cross")
                ap = float(np.clip(base + ap_shift + rng.normal(0, 0.02), 0, 1))
                rd = float(rd_scale * (1 + rng.random())) if setting == "multi" else np.nan
                rows.append(dict(query_id=f"{q}-{item}", item_id=f"i{item}", setting=setting, query_lang=q,
                                 doc_lang=d, ap=ap, rank_distance=rd))
    path = E.per_query_path(profile, model, "xquad_r")
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return dict(model=model, strategy=strategy, alpha=alpha, layers=2.0, dataset="xquad_r")


@pytest.mark.parametrize("hybrid_shift, expected", [(0.1, "supported"), (-0.1, "not supported")])
def test_check_claims_on_synthetic_arms(tmp_path, monkeypatch, hybrid_shift, expected):
    from lib import evaluation as E
    from lib import paper

    monkeypatch.setattr(E, "results_dir", lambda profile: tmp_path / profile)
    monkeypatch.setattr(results_store, "results_dir", lambda profile: tmp_path / profile)  # the evaluation manifest
    rng = np.random.default_rng(0)
    good = hybrid_shift > 0
    arms = [_write_arm("unit", "mono_s0", "mono", 1.0, 0.0, 400, rng),
            _write_arm("unit", "mono_s1", "mono", 1.0, 0.0, 400, rng),
            _write_arm("unit", "cross_s0", "cross", 0.0, 0.0, 300, rng),
            _write_arm("unit", "hybrid_a0.5_s0", "hybrid", 0.5, hybrid_shift, 200 if good else 450, rng),
            _write_arm("unit", "hybrid_a0.3_s0", "hybrid", 0.3, -0.5, 900, rng)]  # another alpha: ignored
    metrics = pd.DataFrame(arms)
    verdicts, comp = paper.check_claims("unit", metrics, n_permutations=500, n_bootstrap=300)
    assert verdicts["verdict"].tolist() == [expected] * 3, verdicts["evidence"].tolist()
    assert set(comp["subset"]) == {"all", "never-seen"}
    assert len(comp) == 2 * (3 * 2 + 1)  # per subset: 3 settings x 2 baselines (mAP) + rank distance
    first = comp[(comp["subset"] == "all") & (comp["setting"] == "mono") & (comp["arm_b"] == "mono")].iloc[0]
    assert first["n_seeds_b"] == 2 and first["diff"] == pytest.approx(hybrid_shift, abs=0.02)


def test_check_claims_without_trained_arms_is_inconclusive(tmp_path, monkeypatch):
    from lib import evaluation as E
    from lib import paper

    monkeypatch.setattr(E, "results_dir", lambda profile: tmp_path / profile)
    monkeypatch.setattr(results_store, "results_dir", lambda profile: tmp_path / profile)  # the evaluation manifest
    metrics = pd.DataFrame([_write_arm("unit", "zero-shot", "zero-shot", np.nan, 0.0, 400,
                                       np.random.default_rng(0))])
    verdicts, _ = paper.check_claims("unit", metrics, n_permutations=100, n_bootstrap=100)
    assert verdicts["verdict"].eq("inconclusive").all()
