"""Notebook 06's tables per arm (a strategy at one alpha; its models differ in the seed), on tiny rows
whose aggregates are known by hand: means and min-max over seeds, n_seeds, the cheapest configuration
per arm, the arm differences judged against the seed spread, and two hybrid alphas kept apart."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as sps  # noqa: E402

from lib import efficiency as eff  # noqa: E402
from lib import efficiency_report as figures  # noqa: E402
from lib import efficiency_tables_report as report  # noqa: E402
from lib import plots  # noqa: E402

NPROBES = (1, 2, 4)
LATENCY = {1: 0.1, 2: 0.2, 4: 0.4}
# model -> (strategy, alpha, seed, overlap@10 at nprobe 1 / 2 / 4, exact nDCG@10, silhouette)
MODELS = {
    "zero-shot": ("zero-shot", np.nan, np.nan, (0.50, 0.70, 0.88), 0.30, 0.60),
    "mono_s0": ("mono", 1.0, 0, (0.80, 0.94, 0.99), 0.50, 0.30),
    "mono_s1": ("mono", 1.0, 1, (0.85, 0.95, 0.99), 0.60, 0.40),
    "mono_s2": ("mono", 1.0, 2, (0.90, 0.97, 1.00), 0.70, 0.50),
    "hybrid_a0.5_s0": ("hybrid", 0.5, 0, (0.90, 0.96, 1.00), 0.61, 0.10),
    "hybrid_a0.5_s1": ("hybrid", 0.5, 1, (0.91, 0.97, 1.00), 0.62, 0.10),
    "hybrid_a0.5_s2": ("hybrid", 0.5, 2, (0.92, 0.98, 1.00), 0.63, 0.10),
    "hybrid_a0.25_s0": ("hybrid", 0.25, 0, (0.60, 0.80, 0.95), 0.40, 0.20),
    "hybrid_a0.25_s1": ("hybrid", 0.25, 1, (0.70, 0.90, 0.97), 0.44, 0.20),
}
SE = 0.01  # every point's standard error over the queries


def tiny_rows(names=tuple(MODELS), dataset: str = "d") -> pd.DataFrame:
    rows = []
    for name in names:
        strategy, alpha, seed, overlaps, ndcg, silhouette = MODELS[name]

        def put(index, param, value_name, value, ds=dataset):
            rows.append((name, strategy, alpha, seed, ds, index, param, value_name, float(value)))

        for name_, v in (("overlap_at_10", 1.0), ("overlap_at_10_se", 0.0), ("ndcg_at_10", ndcg),
                         ("mrr_at_10", ndcg), ("recall_at_50", 0.9), ("latency_ms_p50", 1.0),
                         ("bytes_per_vector", 1536)):
            put("exact", "dim=8", name_, v)
        for nprobe, overlap in zip(NPROBES, overlaps):
            for name_, v in (("overlap_at_10", overlap), ("overlap_at_10_se", SE),
                             ("latency_ms_p50", LATENCY[nprobe]), ("bytes_per_vector", 1600),
                             ("recall_at_10", overlap / 2)):
                put("ivf", f"nlist=8,nprobe={nprobe}", name_, v)
        for name_, v in (("texts_per_s_p50", 30), ("texts_per_s_p5", 28), ("texts_per_s_p95", 32),
                         ("peak_rss_mib", 100), ("n_params", 1e8)):
            put("encoder", "precision=fp32,max_length=8,batch=8", name_, v)
        for name_, v in (("silhouette", silhouette), ("cells_dom50", silhouette), ("cells_dom80", 0.1),
                         ("purity", 0.5), ("purity_shuffled", 0.2), ("nlist", 8)):
            put("clustering", "nlist=8", name_, v)
    return pd.DataFrame(rows, columns=eff.COLUMNS)


def test_arms_keep_two_hybrid_alphas_apart_in_display_order():
    rows = tiny_rows()
    assert report.arm_order(rows) == ["zero-shot", "mono", "hybrid", "hybrid a=0.25"]
    seeds = report.models(rows).groupby("arm")["model"].nunique()
    assert seeds.to_dict() == {"zero-shot": 1, "mono": 3, "hybrid": 3, "hybrid a=0.25": 2}
    pts = report.arm_points(rows, "d").set_index(["arm", "param"])
    assert len(pts) == 4 * 4  # four arms x (exact + three nprobe values): no alpha merged into another
    assert pts.loc[("hybrid a=0.25", "nlist=8,nprobe=1"), "overlap_at_10"] == pytest.approx(0.65)
    assert pts.loc[("hybrid", "nlist=8,nprobe=1"), "overlap_at_10"] == pytest.approx(0.91)
    # a third alpha is a third arm; mono and cross ignore alpha
    third = tiny_rows().replace({"alpha": {0.25: 0.75}})
    both = pd.concat([tiny_rows(), third.assign(model=third["model"] + "x")[third["alpha"] == 0.75]])
    assert report.arm_order(both) == ["zero-shot", "mono", "hybrid", "hybrid a=0.25", "hybrid a=0.75"]


def test_means_and_spread_over_seeds():
    rows = tiny_rows()
    pts = report.arm_points(rows, "d").set_index(["arm", "param"])
    mono = pts.loc[("mono", "nlist=8,nprobe=1")]
    assert mono["n_seeds"] == 3
    assert (mono["overlap_at_10"], mono["overlap_at_10_min"], mono["overlap_at_10_max"]) == pytest.approx(
        (0.85, 0.80, 0.90))
    assert mono["overlap_at_10_std"] == pytest.approx(0.05)
    zero = pts.loc[("zero-shot", "nlist=8,nprobe=1")]
    assert zero["n_seeds"] == 1 and np.isnan(zero["overlap_at_10_std"])
    ex = report.exact_table(rows).loc["d"]
    assert list(ex.index) == ["zero-shot", "mono", "hybrid", "hybrid a=0.25"]
    assert ex.loc["mono", ["ndcg_at_10", "ndcg_at_10_min", "ndcg_at_10_max", "n_seeds"]].tolist() == pytest.approx(
        [0.6, 0.5, 0.7, 3])
    assert ex.loc["hybrid a=0.25", "ndcg_at_10"] == pytest.approx(0.42)
    text = report.as_text(ex)
    assert text.loc["mono", "ndcg_at_10"] == "0.600 (0.500-0.700)" and text.loc["zero-shot", "ndcg_at_10"] == "0.300"
    assert "ndcg_at_10_min" not in text and text.loc["mono", "n_seeds"] == 3
    cl = report.clustering_table(rows, "d")
    assert cl.loc["mono", ["silhouette", "silhouette_min", "silhouette_max"]].tolist() == pytest.approx([0.4, 0.3, 0.5])
    assert cl.loc["hybrid", "IVF overlap nprobe=1"] == pytest.approx(0.91)
    assert cl.loc["mono", "IVF overlap nprobe=1_min"] == pytest.approx(0.80)
    knobs = report.knob_table(rows, "d", text=True)
    assert list(knobs.columns) == ["zero-shot", "mono", "hybrid", "hybrid a=0.25"]
    assert knobs.loc[("ivf", "nlist=8,nprobe=1"), "mono"] == "0.850 (0.800-0.900)"


def test_cheapest_configuration_per_arm():
    table = report.cheapest_table(tiny_rows(), "d", thresholds=(0.9, 0.95))
    at90, at95 = table.xs(0.9, level=1), table.xs(0.95, level=1)
    # mono's mean reaches 0.9 first at nprobe=2 (0.853 at nprobe=1), hybrid at nprobe=1 (0.91), alpha 0.25 at 4
    assert at90["param"].to_dict() == {"zero-shot": "", "mono": "nlist=8,nprobe=2", "hybrid": "nlist=8,nprobe=1",
                                       "hybrid a=0.25": "nlist=8,nprobe=4"}
    assert at90.loc["zero-shot", "index"] == "none"  # 0.88 at most
    assert at90.loc["mono", "seeds reaching"] == 3 and at90.loc["hybrid", "seeds reaching"] == 3
    assert at90.loc["mono", "latency_ms_p50"] == pytest.approx(0.2)
    # at 0.95 mono's mean (0.953 at nprobe=2) reaches it, but only two of its three seeds do
    assert at95.loc["mono", "param"] == "nlist=8,nprobe=2" and at95.loc["mono", "seeds reaching"] == 2
    assert at95.loc["mono", ["overlap_at_10_min", "overlap_at_10_max"]].tolist() == pytest.approx([0.94, 0.97])
    assert at95.loc["hybrid", "param"] == "nlist=8,nprobe=2" and at95.loc["hybrid a=0.25", "param"] == "nlist=8,nprobe=4"


def test_differences_weigh_the_seed_spread():
    rows = tiny_rows()
    diff = report.point_differences(rows, "d", "hybrid", "mono").loc[("ivf", "nlist=8,nprobe=1")]
    mono, hybrid = [0.80, 0.85, 0.90], [0.90, 0.91, 0.92]
    welch = sps.ttest_ind(hybrid, mono, equal_var=False).confidence_interval(0.95)
    assert diff["diff"] == pytest.approx(0.06)
    assert diff["seed_hw"] == pytest.approx((welch.high - welch.low) / 2)
    assert diff["query_hw"] == pytest.approx(2 * np.sqrt(2) * SE)
    # 0.06 is beyond the query noise (0.028) but not the seed spread (about 0.13): no difference
    assert diff["diff"] > diff["query_hw"] and not diff["beyond_noise"]
    # against zero-shot (no training seed) with identical seeds: only the queries' noise counts
    vs_zero = report.point_differences(rows, "d", "hybrid", "zero-shot").loc[("ivf", "nlist=8,nprobe=4")]
    assert vs_zero["seed_hw"] == 0 and vs_zero["diff"] == pytest.approx(0.12) and vs_zero["beyond_noise"]
    table = report.difference_table(rows, ["d"]).set_index("pair")
    assert list(table.index) == ["hybrid - mono", "hybrid a=0.25 - mono", "hybrid a=0.25 - hybrid",
                                 "mono - zero-shot", "hybrid - zero-shot", "hybrid a=0.25 - zero-shot"]
    assert table.loc["hybrid - mono", "seeds"] == "3 vs 3" and table.loc["hybrid - mono", "points"] == 3
    assert table.loc["hybrid - mono", "beyond noise"] == 0 and table.loc["hybrid - mono", "noise"] == "seeds and queries"
    text = report.conclusion(rows, "d", "d")
    assert "**hybrid - mono on d** (3 vs 3 seeds)" in text and "no point differs beyond the noise" in text
    assert "**hybrid a=0.25 - mono on d** (2 vs 3 seeds)" in text
    assert "mono (3 seeds) nDCG@10 0.600 (0.500-0.700)" in text
    assert "mono: ivf nlist=8,nprobe=2 (0.200 ms, 1600 B/vector; 2 of 3 seeds reach 0.95 there)" in text
    assert "mono silhouette 0.40 (0.30-0.50)" in text and "9 models of 4 arms" in text


def test_one_seed_per_arm_falls_back_to_query_noise():
    """The smoke profile: one seed per strategy; the tables still work and say what they can judge."""
    rows = tiny_rows(("zero-shot", "mono_s0", "hybrid_a0.5_s0"))
    diff = report.point_differences(rows, "d", "hybrid", "mono").loc[("ivf", "nlist=8,nprobe=1")]
    assert np.isnan(diff["seed_hw"]) and diff["diff"] == pytest.approx(0.10) and diff["beyond_noise"]
    table = report.difference_table(rows, ["d"]).set_index("pair")
    assert table.loc["hybrid - mono", "noise"] == "queries only (1 seed)"
    assert report.as_text(report.exact_table(rows)).loc[("d", "mono"), "ndcg_at_10"] == "0.500"
    text = report.conclusion(rows, "d", "d")
    assert "only the query noise" in text and "1 of 1 seeds" in text
    for fig in (figures.figure_fronts(rows, figures.default_panels(["d"])), figures.figure_knobs(rows, ["d"]),
                figures.figure_clustering(rows, "d"), figures.figure_encoding(rows)):
        assert fig.axes
        plt.close(fig)


def test_figures_show_every_arm_with_its_seeds():
    rows = tiny_rows()
    styles = figures.arm_styles(report.arm_order(rows))
    assert styles["hybrid"] != styles["hybrid a=0.25"]  # two alphas: two shades and line styles
    third = figures.arm_styles(["hybrid", "hybrid a=0.25", "hybrid a=0.75"])
    assert len({c for c, _ in third.values()}) == 3 and len({ls for _, ls in third.values()}) == 3
    assert styles["hybrid"][0] == matplotlib.colors.to_hex(plots.color("hybrid"))
    fig = figures.figure_knobs(rows, ["d"])
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert [x for x in labels if x.startswith(tuple(plots.label(a) for a in ("zero-shot", "mono", "hybrid")))] == [
        plots.label("zero-shot"), f"{plots.label('mono')} (3 seeds)", f"{plots.label('hybrid')} (3 seeds)",
        f"{plots.label('hybrid')} a=0.25 (2 seeds)"]  # zero-shot is untrained: no seed count
    ax = [a for a in fig.axes if a.get_visible()][0]
    assert len(ax.collections) >= 3  # a min-max band for every arm with several seeds
    plt.close(fig)
    fig = figures.figure_fronts(rows, [("d", "latency_ms_p50", "overlap_at_10")])
    # per arm one front of the means, plus one thin front per seed of the arms with several seeds
    assert len(fig.axes[0].lines) == 4 + 3 + 3 + 2
    plt.close(fig)
