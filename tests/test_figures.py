"""Figure functions of the lib report modules: every one returns a Figure whose axes have a title (or the
figure a suptitle) and labelled axes, and whose legend lists every plotted strategy; the default profile's
CSVs give non-empty figures; compute modules do not import matplotlib."""
from __future__ import annotations

import ast


import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lib import bias_report, efficiency_report, evaluation_report, sampling_report, scaling_report  # noqa: E402
from lib import strategies, training_report  # noqa: E402
from lib.paths import PROJ_ROOT  # noqa: E402
from lib.plots import label, ordered  # noqa: E402

DEFAULT = PROJ_ROOT / "results" / "default"
TRAINED = list(strategies.trained_names())


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def legend_texts(fig: Figure) -> list[str]:
    out = []
    for ax in fig.axes:
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    for leg in fig.legends:
        out += [t.get_text() for t in leg.get_texts()]
    return out


def check(fig, *, legend: list[str] = (), titled: bool = True):
    """Figure, titled, every visible data axes labelled on both sides (or its row / column neighbour), and
    every expected entry somewhere in a legend (substring match)."""
    assert isinstance(fig, Figure)
    data_axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data() and ax.get_label() != "<colorbar>"]
    assert data_axes, "no data drawn"
    suptitles = [sf._suptitle.get_text() for sf in [fig, *fig.subfigs] if getattr(sf, "_suptitle", None)]
    if titled:
        assert suptitles or all(ax.get_title() for ax in data_axes)
    for ax in data_axes:
        row = [a for a in data_axes if a.get_position().y0 == pytest.approx(ax.get_position().y0)]
        col = [a for a in data_axes if a.get_position().x0 == pytest.approx(ax.get_position().x0)]
        assert any(a.get_ylabel() for a in row), "y axis without label in this row"
        assert any(a.get_xlabel() for a in col), "x axis without label in this column"
    texts = legend_texts(fig)
    for entry in legend:
        assert any(entry in t for t in texts), f"{entry!r} missing from the legend {texts}"
    return fig


# --------------------------------------------------------------------------
# Tiny frames


def tiny_comparisons() -> pd.DataFrame:
    rows = []
    for subset, datasets in (("all", ("xquad_r", "mlqa_r")), ("never-seen", ("xquad_r",))):
        for d in datasets:
            for setting in ("mono", "cross", "multi"):
                for b, diff in (("mono", 0.012), ("cross", -0.004)):
                    diff = diff * (10 if setting == "multi" and b == "mono" else 1)
                    rows.append(dict(subset=subset, dataset=d, setting=setting, metric="map", arm_a="hybrid", arm_b=b,
                                     diff=diff, ci_low=diff - 0.003, ci_high=diff + 0.003, outcome="equivalent"))
    return pd.DataFrame(rows)


def tiny_metrics() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for strategy in strategies.names():
        for seed in ([None] if strategy == strategies.ZERO_SHOT else [0, 1]):
            model = strategy if seed is None else f"{strategy}_s{seed}"
            alpha = 0.5 if strategy == "hybrid" else np.nan
            for d, langs in (("xquad_r", ["en", "de", "el"]), ("mlqa_r", ["en", "de"])):
                for q in langs:
                    for c in langs + ["all"]:
                        setting = "multi" if c == "all" else "mono" if c == q else "cross"
                        rows.append(dict(model=model, strategy=strategy, alpha=alpha, seed=seed, layers=2.0,
                                         dataset=d, setting=setting, query_lang=q, doc_lang=c, metric="map",
                                         value=float(rng.uniform(0.3, 0.8)), n_queries=5, profile="t"))
    return pd.DataFrame(rows)


def tiny_frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    frames = {}
    for name in TRAINED:
        rows = []
        for step in range(1, 41):
            mono = name == "mono" or (name == "hybrid" and step % 2)
            dataset = "tydiqa" if mono and step % 3 else "mlqa_test"
            for k in range(4):
                q = rng.choice(["de", "es", "zh"])
                rows.append(dict(step=step, batch_kind="mono" if mono else "cross", dataset=dataset, item_id=str(k),
                                 query_lang=q, doc_lang=q if mono else rng.choice(["ar", "hi"])))
        frames[name] = pd.DataFrame(rows)
    return frames


def tiny_probabilities() -> pd.DataFrame:
    return pd.DataFrame({"kind": ["mono", "mono", "cross"], "dataset": ["mlqa_test", "tydiqa", "mlqa_test"],
                         "pairs": [10, 20, 30], "probability": [1 / 3, 2 / 3, 1.0]})


def tiny_logs() -> pd.DataFrame:
    parts = []
    for name in TRAINED:
        for seed in (0, 1):
            steps = np.arange(0, 11)
            parts.append(pd.DataFrame({"step": steps, "loss": np.r_[np.nan, np.linspace(5, 2, 10)],
                                       "val_loss": [3.0 if s % 5 == 0 else np.nan for s in steps]})
                         .assign(run=f"{name}_s{seed}", strategy=name, alpha=0.5 if name == "hybrid" else None,
                                 seed=seed, num_layers=0, best_step=10))
    return pd.concat(parts, ignore_index=True)


def tiny_scaling() -> pd.DataFrame:
    rows = []
    for layers, params in ((1, 1e6), (2, 2e6)):
        for strategy in strategies.names():
            suffix = "" if layers == 2 else f"_L{layers}"
            trained = strategy != strategies.ZERO_SHOT
            secs = 10.0 * layers * (5 if strategy == "mono" and layers == 2 else 1)
            rows.append(dict(model=(f"{strategy}_s0" if trained else strategy) + suffix, strategy=strategy,
                             layers=layers, non_embedding_params=params, encode_texts_per_s=100 / layers,
                             train_seconds=secs if trained else np.nan, steps=6.0 if trained else np.nan,
                             reused="True" if layers == 2 else "False"))
    return pd.DataFrame(rows)


def tiny_run_times() -> pd.DataFrame:
    return pd.DataFrame({"notebook": "03_training", "seconds": [120.0, 30.0, 30.0, 31.0, 29.0, 30.0],
                         "run": ["03_training__seed-0_strategy-mono", "03_training__seed-0_strategy-cross",
                                 "03_training__seed-0_strategy-hybrid", "03_training__seed-1_strategy-mono",
                                 "03_training__seed-1_strategy-cross", "03_training__seed-1_strategy-hybrid"]})


def tiny_estimates(gaps: bool = False) -> pd.DataFrame:
    rows = []
    for layers, params in ((1, 1e6), (2, 2e6)):
        for group in ("same", "cross", "all"):
            if gaps:
                for b in ("mono", "cross"):
                    rows.append(dict(model_a="h", model_b=f"{b}{layers}", group=group, estimate=0.01, low=0.0,
                                     high=0.02, p_value=0.1, strategy_b=b, layers=layers, non_embedding_params=params))
            else:
                for s in strategies.names():
                    rows.append(dict(model=f"{s}{layers}", group=group, estimate=0.3, low=0.28, high=0.32,
                                     strategy=s, layers=layers, non_embedding_params=params))
    return pd.DataFrame(rows)


def tiny_efficiency() -> pd.DataFrame:
    """Zero-shot, mono and hybrid at two alphas, two seeds per trained arm."""
    rows = []
    models = [("zero-shot", "zero-shot", np.nan, np.nan)] + [
        (f"{name}_s{seed}", strategy, alpha, seed) for name, strategy, alpha in
        (("mono", "mono", 1.0), ("hybrid_a0.5", "hybrid", 0.5), ("hybrid_a0.25", "hybrid", 0.25)) for seed in (0, 1)]
    for k, (model, strategy, alpha, seed) in enumerate(models):
        ident = dict(model=model, strategy=strategy, alpha=alpha, seed=seed)
        for d in ("dureader_demo", "xquad_r"):
            for family, params in (("exact", ["flat"]), ("ivf", ["nlist=8,nprobe=1", "nlist=8,nprobe=4"]),
                                   ("hnsw", ["M=32,efSearch=16", "M=32,efSearch=64"])):
                for i, p in enumerate(params):
                    for name, v in (("overlap_at_10", 0.8 + 0.1 * i - 0.01 * k), ("overlap_at_10_se", 0.01),
                                    ("latency_ms_p50", 0.1 * (i + 1)), ("bytes_per_vector", 1536.0),
                                    ("recall_at_10", 0.5)):
                        rows.append(dict(ident, dataset=d, index=family, param=p, value_name=name, value=v))
        for prec in ("fp32", "bf16"):
            for name, v in (("texts_per_s_p50", 30.0), ("texts_per_s_p5", 28.0), ("texts_per_s_p95", 32.0),
                            ("peak_rss_mib", 100.0), ("n_params", 1e8)):
                rows.append(dict(ident, dataset="dureader_demo", index="encoder", param=f"precision={prec}",
                                 value_name=name, value=v))
        for name, v in (("silhouette", 0.1 * k), ("cells_dom50", 0.4), ("cells_dom80", 0.2), ("purity", 0.5),
                        ("purity_shuffled", 0.2), ("nlist", 8)):
            rows.append(dict(ident, dataset="xquad_r", index="clustering", param="k=8", value_name=name, value=v))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Each figure function on tiny frames


def test_strategy_order_and_labels_come_from_the_registry():
    assert ordered(["hybrid", "zero-shot", "cross", "mono", "hybrid a=0.3"]) == \
        ["zero-shot", "mono", "cross", "hybrid", "hybrid a=0.3"]
    assert label("hybrid a=0.3") == f"{strategies.label('hybrid')} a=0.3"


def test_evaluation_figures():
    comp, metrics = tiny_comparisons(), tiny_metrics()
    fig = check(evaluation_report.figure_gaps(comp, metrics),
                legend=[f"hybrid - {label('mono')}", f"hybrid - {label('cross')}", "equivalence margin"])
    assert "arrow" in fig.subfigs[0]._suptitle.get_text()  # the 10x multi gap is clipped and said so
    check(evaluation_report.figure_seen_unseen(comp),
          legend=["never-seen languages", "all languages", "equivalence margin"])
    limit = evaluation_report.heatmap_diff_limit(metrics, ["xquad_r", "mlqa_r"])
    fig = check(evaluation_report.figure_heatmaps(metrics, "mlqa_r", limit))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars and all(ax.get_ylabel() for ax in bars), "every colour bar is labelled"
    diff_limits = {tuple(np.round(im.get_clim(), 6)) for ax in fig.axes for im in ax.images
                   if im.get_cmap().name == "RdBu"}
    assert diff_limits == {(-limit, limit)}, "one symmetric scale for every difference panel"


def test_bias_figures():
    summary = pd.DataFrame({"dataset": ["xquad_r"] * 4 + ["mlqa_r"] * 4, "arm": list(strategies.names()) * 2,
                            "top10_same_lang_share": [0.7, 0.5, 0.2, 0.25] + [np.nan] * 4,
                            "own_rank": [5.0, 10, 40, 40] * 2, "other_rank": [300.0, 150, 90, 100] * 2})
    fig = check(bias_report.figure_top10_same_language(summary, {"xquad_r": 11, "mlqa_r": 7}),
                legend=["no language preference"])
    assert len([ax for ax in fig.axes if ax.has_data()]) == 1, "no empty MLQA-R panel"
    assert "MLQA-R not shown" in fig._suptitle.get_text()
    check(bias_report.figure_own_vs_other(summary), legend=["own-language", "other languages"])
    bias = pd.DataFrame({"dataset": "xquad_r", "arm": np.repeat(TRAINED, 20), "query_id": np.tile(np.arange(20), 3),
                         "query_lang": np.tile(["en", "de"], 30), "rank_distance": np.arange(60) + 1.0,
                         "top10_same_lang": np.tile([2, 3], 30), "complete": True})
    ci = bias_report.bootstrap_intervals(bias, "top10_same_lang", only_complete=True, scale=0.1, n_bootstrap=50)
    assert set(ci["arm"]) == set(TRAINED) and (ci["low"] <= ci["high"]).all()
    check(bias_report.figure_rank_distance(bias, ["xquad_r"]), legend=["mean"])


def test_sampling_figures():
    frames = tiny_frames()
    check(sampling_report.figure_language_heatmaps(frames, ["ar", "de", "es", "hi", "zh"], 0.5, 40, 4))
    check(sampling_report.figure_mono_share(frames, 0.5), legend=[label(n) for n in TRAINED] + ["alpha = 0.5"])
    check(sampling_report.figure_languages_per_batch(frames), legend=[label(n) for n in TRAINED])
    table = sampling_report.dataset_share_table(frames, tiny_probabilities())
    fig = check(sampling_report.figure_dataset_shares(table),
                legend=["sampling probability", label("mono"), label("hybrid")])
    assert "by construction" in fig._suptitle.get_text().replace("\n", " ")  # the trivial cross share: named, not drawn
    assert all(ax.get_title() != "cross-lingual batches" for ax in fig.axes)


def test_loss_grid_shares_one_y_axis():
    fig = check(training_report.figure_loss_grid(tiny_logs()), legend=["validation loss", "kept checkpoint"])
    axes = [ax for ax in fig.axes if ax.has_data()]
    assert len(axes) == len(TRAINED) * 2
    assert len({ax.get_ylim() for ax in axes}) == 1
    assert "Validation loss" in fig._suptitle.get_text() and "dropout" in fig._suptitle.get_text()
    assert not any(ax.get_legend() for ax in axes), "the legend sits outside the panels"


def test_scaling_figures():
    table = tiny_scaling()
    check(scaling_report.figure_size_axis(table, 2))
    cost = scaling_report.training_cost_table(table, tiny_run_times())
    row = cost.set_index("model").loc["mono_s0"]
    assert row["outlier"] and row["estimate_seconds"] < row["train_seconds"]
    fig = check(scaling_report.figure_training_cost(table, tiny_run_times()),
                legend=["outlier timing", "estimate replacing the outlier"] + [label(n) for n in TRAINED])
    assert "mono_s0 took" in fig._suptitle.get_text()
    check(scaling_report.plot_groups(tiny_estimates(), ("same", "cross", "all"), "nDCG@10", "MLQARetrieval"),
          legend=[label(n) for n in strategies.names()])
    check(scaling_report.plot_groups(tiny_estimates(gaps=True), ("same", "cross", "all"), "nDCG@10 difference",
                                     "MLQARetrieval", gaps=True, margin=0.01),
          legend=[f"hybrid - {label('mono')}", f"hybrid - {label('cross')}", "equivalence margin"])


def test_efficiency_figures():
    rows = tiny_efficiency()
    arms = [label("zero-shot"), f"{label('mono')} (2 seeds)", f"{label('hybrid')} (2 seeds)",
            f"{label('hybrid')} a=0.25 (2 seeds)"]  # two alphas: two arms
    fig = check(efficiency_report.figure_fronts(rows, efficiency_report.default_panels(["dureader_demo", "xquad_r"])),
                legend=arms + ["IVF-Flat", "HNSW", "exact", "one seed's front"])
    assert not any(ax.get_legend() for ax in fig.axes), "no legend inside a panel (none hides a point)"
    assert all("_" not in ax.get_xlabel() and "_" not in ax.get_ylabel() for ax in fig.axes if ax.has_data())
    check(efficiency_report.figure_knobs(rows, ["dureader_demo", "xquad_r"]), legend=arms + ["range over seeds"])
    check(efficiency_report.figure_encoding(rows), legend=["fp32", "bf16"] + arms)
    check(efficiency_report.figure_clustering(rows, "xquad_r"), legend=["purity", "one seed", "min-max over seeds"])


# --------------------------------------------------------------------------
# The default profile's CSVs


@pytest.mark.skipif(not (DEFAULT / "comparisons.csv").exists(), reason="no default results")
def test_default_csvs_give_nonempty_figures(monkeypatch):
    from lib import figures

    saved = []
    monkeypatch.setattr(figures, "savefig", lambda fig, name, profile, close=False: (
        saved.append((name, check(fig))), plt.close(fig)))
    done, skipped = figures.redraw("default", only=["04", "05", "06", "07"], log=lambda *a: None)
    assert {"04_map_by_strategy", "04_seen_unseen", "04_heatmaps_xquad_r", "04_heatmaps_mlqa_r",
            "05_top10_same_language", "06_pareto_fronts", "07_training_cost", "07_mlqa_gaps"} <= set(done)
    assert len(saved) == len(done)


def test_compute_modules_do_not_import_plotting():
    lib = PROJ_ROOT / "lib"
    allowed = {"plots.py", "figures.py", "explore_widget.py"} | {p.name for p in lib.glob("*_report.py")}
    for path in lib.glob("*.py"):
        if path.name in allowed:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("matplotlib", "seaborn") for n in names), \
                f"{path.name} imports {names}"
