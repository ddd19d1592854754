"""Tables, figures and the computed answer of notebook 06 (study question 1),
all read from the flat rows of ``results/<profile>/efficiency.csv`` that
:func:`lib.efficiency.measure_all` writes.

- :func:`points` turns the rows of one dataset into one row per sweep point
  (model, index family, parameter) with the measured values as columns;
- :func:`pareto_front` / :func:`cheapest_at`: the quality-versus-cost
  fronts and the cheapest point reaching a quality;
- ``*_table``: the notebook's tables; ``figure_*``: its figures;
- :func:`conclusion`: the answer as markdown, every number read from the rows.
"""
from __future__ import annotations

import re
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib import metric_registry, strategies
from lib.efficiency import OVERLAP
from lib.indexes import FAMILIES
from lib.models import ZERO_SHOT

# --------------------------------------------------------------------------
# Points and fronts


def wide(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, strategy, dataset, index, param), one column per value_name."""
    keys = ["model", "strategy", "dataset", "index", "param"]
    out = rows.pivot_table(index=keys, columns="value_name", values="value", aggfunc="first")
    return out.reset_index().rename_axis(columns=None)


def pareto_front(points: pd.DataFrame, cost: str, quality: str) -> pd.DataFrame:
    """The points no other point beats on both axes (lower ``cost``, higher ``quality``), by cost."""
    pts = points.dropna(subset=[cost, quality]).sort_values([cost, quality], ascending=[True, False])
    best, keep = -np.inf, []
    for idx, q in zip(pts.index, pts[quality]):
        if q > best:
            keep.append(idx)
            best = q
    return pts.loc[keep]


def cheapest_at(points: pd.DataFrame, quality: str, threshold: float, cost: str) -> pd.DataFrame:
    """Per model, the cheapest point (by ``cost``) whose ``quality`` reaches ``threshold``."""
    ok = points[points[quality] >= threshold].sort_values(cost)
    return ok.groupby("model", sort=False).head(1).set_index("model")


# --------------------------------------------------------------------------
# Tables


def _param_key(param: str) -> tuple:
    """Sort key of a ``param`` text: its numbers in order ("nlist=431,nprobe=16" -> (431, 16))."""
    nums = tuple(float(x) for x in re.findall(r"=(\d+(?:\.\d+)?)", param))
    return nums or (0.0,)


def points(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The sweep points of one dataset, one row per (model, index, param), values as columns,
    ordered by model (as in ``rows``), index family and the numbers of ``param``."""
    sub = rows[(rows["dataset"] == dataset) & rows["index"].isin(FAMILIES)
               & ~rows["value_name"].str.startswith(("e2e_", "query_encode_"))]
    if sub.empty:
        return pd.DataFrame(columns=["model", "strategy", "dataset", "index", "param"])
    pts = wide(sub)
    order = {m: i for i, m in enumerate(_model_order(rows))}
    key = pts.apply(lambda r: (order[r["model"]], FAMILIES.index(r["index"]), _param_key(r["param"])), axis=1)
    return pts.iloc[np.argsort(key.to_numpy())].reset_index(drop=True)


def _model_order(rows: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(rows["model"]))


def encoding_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model: encoding throughput (median, p5, p95 over repeats) and peak memory for each precision,
    parameter count, and single-query encoding / end-to-end latency."""
    enc = rows[rows["index"] == "encoder"].copy()
    enc["precision"] = enc["param"].str.extract(r"precision=(\w+)", expand=False)
    table = enc.pivot_table(index="model", columns=["precision", "value_name"], values="value", sort=False)
    out = pd.DataFrame(index=_model_order(enc))
    for p in dict.fromkeys(enc["precision"]):
        out[f"{p} texts/s"] = table[(p, "texts_per_s_p50")]
        out[f"{p} texts/s p5"] = table[(p, "texts_per_s_p5")]
        out[f"{p} texts/s p95"] = table[(p, "texts_per_s_p95")]
        out[f"{p} peak MiB"] = table[(p, "peak_rss_mib")]
        if (p, "cosine_vs_fp32") in table:
            out[f"{p} cosine vs fp32"] = table[(p, "cosine_vs_fp32")]
    out["params (M)"] = table.xs("n_params", axis=1, level=1).iloc[:, 0] / 1e6
    e2e = rows[rows["value_name"].isin(["query_encode_ms_p50", "e2e_latency_ms_p50"])]
    e2e = e2e.pivot_table(index="model", columns="value_name", values="value")
    for name, label in (("query_encode_ms_p50", "query encode ms"), ("e2e_latency_ms_p50", "end-to-end ms")):
        if name in e2e:
            out[label] = e2e[name]
    return out.rename_axis("model")


def exact_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and model: the exact index's labelled metrics, latency and throughput."""
    ex = rows[(rows["index"] == "exact") & ~rows["value_name"].str.startswith(("e2e_", "query_encode_"))]
    keep = [*metric_registry.family("dureader"), *metric_registry.family("pool"), "latency_ms_p50", "batch_qps_p50", "bytes_per_vector"]
    table = ex[ex["value_name"].isin(keep)].pivot_table(index=["dataset", "model"], columns="value_name",
                                                         values="value", sort=False)
    return table[[c for c in dict.fromkeys(keep) if c in table.columns]].rename_axis(columns=None)


def knob_table(rows: pd.DataFrame, dataset: str, value: str = OVERLAP) -> pd.DataFrame:
    """``value`` at every sweep point (rows: index, param) for every model (columns)."""
    pts = points(rows, dataset)
    if value not in pts:
        return pd.DataFrame()
    table = pts.pivot_table(index=["index", "param"], columns="model", values=value, sort=False)
    return table[[m for m in _model_order(rows) if m in table.columns]].rename_axis(columns=None)


def cheapest_table(rows: pd.DataFrame, dataset: str, thresholds: Sequence[float] = (0.9, 0.95, 0.99),
                   cost: str = "latency_ms_p50", quality: str = OVERLAP) -> pd.DataFrame:
    """Per model and threshold, the cheapest approximate point (by ``cost``) reaching ``quality``."""
    pts = points(rows, dataset)
    pts = pts[pts["index"] != "exact"]
    out = []
    for t in thresholds:
        best = cheapest_at(pts, quality, t, cost)
        for model in dict.fromkeys(pts["model"]):
            b = best.loc[model] if model in best.index else None
            out.append((model, t, "none", "", np.nan, np.nan, np.nan) if b is None else
                       (model, t, b["index"], b["param"], b[cost], b[quality], b["bytes_per_vector"]))
    return pd.DataFrame(out, columns=["model", f"{quality} >=", "index", "param", cost, quality,
                                      "bytes_per_vector"]).set_index(["model", f"{quality} >="])


def clustering_table(rows: pd.DataFrame, dataset: str = "xquad_r", n_probes: int = 3) -> pd.DataFrame:
    """Per model: the language-clustering statistics of the pool, beside IVF's overlap@10 there at the
    ``n_probes`` smallest nprobe values."""
    cl = rows[(rows["dataset"] == dataset) & (rows["index"] == "clustering")]
    if cl.empty:
        return pd.DataFrame()
    table = cl.pivot_table(index="model", columns="value_name", values="value", sort=False)
    cols = ["silhouette", "cells_dom50", "cells_dom80", "purity", "purity_shuffled", "cell_entropy",
            "cell_entropy_shuffled", "nlist"]
    table = table[[c for c in cols if c in table.columns]].rename_axis(columns=None)
    knobs = knob_table(rows, dataset)
    if "ivf" in knobs.index.get_level_values(0):
        ivf = knobs.loc["ivf"]
        for param in ivf.index[:n_probes]:
            table[f"IVF overlap {param.split(',')[-1]}"] = ivf.loc[param].reindex(table.index)
    return table


def difference_table(rows: pd.DataFrame, datasets: Sequence[str]) -> pd.DataFrame:
    """For each pair of strategies (hybrid vs mono / cross; each trained one vs zero-shot) and dataset:
    the mean and largest difference in overlap@10 at identical index settings, and how many points
    differ by more than two standard errors."""
    by = _strategy_models(rows)
    trained = [s for s in strategies.trained_names() if s in by]
    pairs = [(a, b) for a, b in (("hybrid", "mono"), ("hybrid", "cross"), ("mono", "cross")) if a in by and b in by]
    pairs += [(a, b) for i, a in enumerate(trained) for b in trained[:i] if a not in ("mono", "cross", "hybrid")]
    pairs += [(a, ZERO_SHOT) for a in trained if ZERO_SHOT in by]
    out = []
    for a, b in pairs:
        for dataset in datasets:
            diff = point_differences(rows, dataset, by[a], by[b])
            if diff.empty:
                continue
            worst = diff["diff"].abs().idxmax()
            out.append({"pair": f"{a} - {b}", "dataset": dataset, "points": len(diff),
                        "mean diff": diff["diff"].mean(), "largest diff": diff.loc[worst, "diff"],
                        "at": f"{worst[0]} {worst[1]}", "beyond 2 SE": int(diff["beyond_noise"].sum())})
    return pd.DataFrame(out)


def stage_seconds(rows: pd.DataFrame) -> pd.DataFrame:
    """Seconds per stage (load, encoding cost, embedding, sweep...) per model and dataset."""
    facts = rows[(rows["index"] == "facts") & rows["value_name"].str.endswith("_s")]
    return facts.pivot_table(index=["model", "dataset"], columns="value_name", values="value",
                             sort=False).rename_axis(columns=None)


# --------------------------------------------------------------------------
# Figures (colours, order and labels of the models' strategies from lib.strategies)

MARKERS = {"exact": "*", "ivf": "o", "hnsw": "^", "pq": "s", "sq": "D", "trunc": "v"}
FAMILY_LABELS = {"exact": "exact (flat)", "ivf": "IVF-Flat (nprobe sweep)", "hnsw": "HNSW (efSearch sweep)",
                 "pq": "product quantization", "sq": "scalar quantization", "trunc": "truncated dimensions"}
AXIS_LABELS = {
    "latency_ms_p50": "single-query search latency, median (ms, log scale)",
    "bytes_per_vector": "index memory per vector (bytes, log scale)",
    "batch_qps_p50": "batched throughput, median (queries / s, log scale)",
    "end_to_end_ms_p50": "encode + search latency, median (ms, log scale)",
    OVERLAP: "overlap@10 with the exact top 10\n(share, 1 = no loss)",
    "recall_at_10": "recall@10 (share of the relevant\ncandidates in the top 10)",
    "ndcg_at_10": "nDCG@10",
}
DATASET_LABELS = {"xquad_r": "XQuAD-R (11-language pool)", "dureader_demo": "DuReader (demo, Chinese)",
                  "dureader_hub": "DuRetrieval (C-MTEB)"}
SHORT = {"latency_ms_p50": "latency", "bytes_per_vector": "memory", "batch_qps_p50": "throughput",
         OVERLAP: "overlap@10", "recall_at_10": "recall@10", "ndcg_at_10": "nDCG@10"}


def axis_label(name: str) -> str:
    return AXIS_LABELS.get(name, name.replace("_", " "))


def _models(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, strategy) in the registry's display order of the strategies."""
    pairs = rows[["model", "strategy"]].drop_duplicates()
    pairs = pairs.assign(key=pairs["strategy"].map(strategies.order_key)).sort_values(["key", "model"], kind="stable")
    return list(zip(pairs["model"], pairs["strategy"]))


def _model_label(model: str, strategy: str) -> str:
    return f"{strategies.label(strategy)} ({model})" if model != strategy else strategies.label(strategy)


def _colours(rows: pd.DataFrame) -> dict[str, str]:
    """Model -> colour: the strategy's colour; a second model of one strategy gets a shade of it."""
    out, seen = {}, {}
    for model, strategy in _models(rows):
        k = seen.setdefault(strategy, 0)
        base = strategies.color(strategy)
        out[model] = base if k == 0 else plt.matplotlib.colors.to_hex(
            np.clip(np.array(plt.matplotlib.colors.to_rgb(base)) * (1 - 0.25 * k), 0, 1))
        seen[strategy] = k + 1
    return out


def plot_pareto(pts: pd.DataFrame, cost: str, quality: str, ax, log_cost: bool = True,
                colours: dict | None = None) -> None:
    """Every point (marker = index family) and each model's Pareto front (line), colour = strategy."""
    from matplotlib.ticker import NullFormatter

    colours = colours or _colours(pts)
    for model, grp in pts.groupby("model", sort=False):
        colour = colours.get(model, "0.3")
        for family, fam in grp.groupby("index"):
            ax.scatter(fam[cost], fam[quality], marker=MARKERS.get(family, "x"), color=colour, alpha=0.45, s=22)
        front = pareto_front(grp, cost, quality)
        ax.plot(front[cost], front[quality], "-", color=colour, lw=1.4)
    if log_cost:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(axis_label(cost))
    ax.set_ylabel(axis_label(quality))
    ax.grid(alpha=0.3)


def plot_knob(pts: pd.DataFrame, family: str, quality: str, ax, colours: dict | None = None) -> None:
    """Quality against the swept search parameter (nprobe / efSearch) of one family, one line per model,
    with 95% intervals (±1.96 standard errors over the queries) where the rows carry them."""
    sub = pts[pts["index"] == family].copy()
    if sub.empty:
        ax.set_visible(False)
        return
    colours = colours or _colours(pts)
    sub["knob"] = sub["param"].str.rsplit("=", n=1).str[-1].astype(float)
    models = list(dict.fromkeys(sub["model"]))
    for i, (model, grp) in enumerate(sub.groupby("model", sort=False)):
        grp = grp.sort_values("knob")
        se = grp.get(f"{quality}_se")
        dodge = 2 ** (0.04 * (i - (len(models) - 1) / 2))  # side by side on the log axis
        ax.errorbar(grp["knob"] * dodge, grp[quality], yerr=None if se is None else 1.96 * se, fmt="o-",
                    color=colours.get(model, "0.3"), ms=3, capsize=2, lw=1.2,
                    label=_model_label(model, grp["strategy"].iloc[0]))
    knob = sub["param"].iloc[0].rsplit(",", 1)[-1].split("=")[0]
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"{knob} (log scale)")
    ax.set_ylabel(axis_label(quality))
    ax.grid(alpha=0.3)


def _model_handles(rows: pd.DataFrame, colours: dict) -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=colours[m], lw=1.6, label=_model_label(m, s)) for m, s in _models(rows)]


def figure_encoding(rows: pd.DataFrame):
    """Encoding throughput (median with p5-p95 bars) and peak memory per model and precision."""
    table = encoding_table(rows)
    precisions = [c.split()[0] for c in table.columns if c.endswith(" texts/s")]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.8), layout="constrained")
    x = np.arange(len(table))
    width = 0.8 / max(1, len(precisions))
    hatches = [None, "//", "..", "xx"]
    strategy_of = dict(_models(rows))
    colours = [strategies.color(strategy_of.get(m, m)) for m in table.index]
    for i, p in enumerate(precisions):
        mid = table[f"{p} texts/s"].to_numpy()
        err = np.abs(np.vstack([mid - table[f"{p} texts/s p5"], table[f"{p} texts/s p95"] - mid]))
        axes[0].bar(x + i * width, mid, width, yerr=err, capsize=3, color=colours, hatch=hatches[i % 4],
                    edgecolor="white")
        axes[1].bar(x + i * width, table[f"{p} peak MiB"], width, color=colours, hatch=hatches[i % 4],
                    edgecolor="white")
    for ax, ylabel, title in zip(axes, ("passages / s (median, bars p5-p95 over repeats)",
                                        "peak memory above start (MiB)"),
                                 ("Encoding throughput", "Peak memory while encoding")):
        ax.set_xticks(x + width * (len(precisions) - 1) / 2,
                      [_model_label(m, strategy_of.get(m, m)) for m in table.index], rotation=20, ha="right",
                      fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("model (colour = strategy)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="0.6", hatch=hatches[i % 4], edgecolor="white", label=p)
               for i, p in enumerate(precisions)]
    axes[1].legend(handles=handles, title="precision", loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8,
                   borderaxespad=0)
    fig.suptitle("Encoding cost per model (same architecture: differences are timing noise)", fontsize=11)
    return fig


def default_panels(datasets: Sequence[str]) -> list[tuple[str, str, str]]:
    """Notebook 06's Pareto panels: DuReader quality vs latency and vs memory; XQuAD-R overlap@10 and
    recall@10 vs latency (for the datasets present)."""
    panels = []
    for d in datasets:
        if d == "xquad_r":
            panels += [(d, "latency_ms_p50", OVERLAP), (d, "latency_ms_p50", "recall_at_10")]
        else:
            panels += [(d, "latency_ms_p50", OVERLAP), (d, "bytes_per_vector", OVERLAP)]
    return panels


def figure_fronts(rows: pd.DataFrame, panels: Sequence[tuple[str, str, str]]):
    """One panel per (dataset, cost, quality): every sweep point and each model's Pareto front; legends
    below the panels, so no point is hidden."""
    from matplotlib.lines import Line2D

    colours = _colours(rows)
    n_rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(n_rows, 2, figsize=(12, 4.0 * n_rows + 0.8), squeeze=False, layout="constrained")
    for ax, (dataset, cost, quality) in zip(axes.flat, panels):
        plot_pareto(points(rows, dataset), cost, quality, ax, colours=colours)
        ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)}: {SHORT.get(quality, quality)} vs "
                     f"{SHORT.get(cost, cost)}", fontsize=10)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    families = [f for f in MARKERS if f in set(rows["index"])]
    handles = _model_handles(rows, colours) + [
        Line2D([], [], marker=MARKERS[f], ls="", color="grey", label=FAMILY_LABELS.get(f, f)) for f in families]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False,
               title="line = a model's Pareto front (colour = strategy); marker = index family")
    fig.suptitle("Quality versus cost of every index configuration (95% intervals of overlap@10: 06_search_knobs)",
                 fontsize=11)
    return fig


def figure_knobs(rows: pd.DataFrame, datasets: Sequence[str], quality: str = OVERLAP):
    """overlap@10 against nprobe (IVF) and efSearch (HNSW) per dataset and model, 95% intervals."""
    colours = _colours(rows)
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11.5, 3.6 * len(datasets) + 0.6), squeeze=False,
                             layout="constrained")
    for row, dataset in zip(axes, datasets):
        pts = points(rows, dataset)
        for ax, family in zip(row, ("ivf", "hnsw")):
            plot_knob(pts, family, quality, ax, colours=colours)
            ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)}: {FAMILY_LABELS[family]}", fontsize=10)
    fig.legend(handles=_model_handles(rows, colours), loc="outside lower center", ncols=4, fontsize=8,
               frameon=False, title="model (colour = strategy); bars: 95% interval over the queries")
    fig.suptitle("Search quality against the search-time parameter", fontsize=11)
    return fig


def figure_clustering(rows: pd.DataFrame, dataset: str = "xquad_r"):
    """Language clustering per model: silhouette of the language labels; cell statistics vs shuffled labels."""
    table = clustering_table(rows, dataset)
    if table.empty:
        from lib.plots import empty_figure
        return empty_figure("Language clustering", f"no clustering rows for {dataset}")
    strategy_of = dict(_models(rows))
    names = [_model_label(m, strategy_of.get(m, m)) for m in table.index]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), layout="constrained")
    x = np.arange(len(table))
    axes[0].bar(x, table["silhouette"], color=[strategies.color(strategy_of.get(m, m)) for m in table.index])
    axes[0].set_ylabel("silhouette of the language labels\n(cosine; 1 = separate language clusters)")
    axes[0].set_title("Do languages form clusters?", fontsize=10)
    bars = [("cells_dom50", "IVF cells > 50% one language"), ("cells_dom80", "IVF cells > 80% one language"),
            ("purity", "purity (size-weighted)"), ("purity_shuffled", "purity with shuffled labels")]
    for i, (col, lab) in enumerate(bars):
        axes[1].bar(x + 0.2 * i, table[col], 0.2, label=lab, color=f"C{i + 4}",
                    hatch="//" if "shuffled" in col else None, edgecolor="white")
    axes[1].set_ylabel("share of cells / purity (0-1)")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title("Language mix of k-means (IVF) cells", fontsize=10)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    for ax, shift in zip(axes, (0, 0.3)):
        ax.set_xticks(x + shift, names, rotation=20, ha="right", fontsize=8)
        ax.set_xlabel("model")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Language clustering of the {DATASET_LABELS.get(dataset, dataset)} embeddings", fontsize=11)
    return fig


# --------------------------------------------------------------------------
# Conclusion


def _strategy_models(rows: pd.DataFrame) -> dict[str, str]:
    pairs = rows[["strategy", "model"]].drop_duplicates()
    return dict(zip(pairs["strategy"], pairs["model"]))


def point_differences(rows: pd.DataFrame, dataset: str, a: str, b: str) -> pd.DataFrame:
    """overlap@10 of model ``a`` minus model ``b`` at every approximate point, with 2 standard errors."""
    pts = points(rows, dataset)
    pts = pts[pts["index"] != "exact"].set_index(["index", "param", "model"])
    if pts.empty:
        return pd.DataFrame(columns=["diff", "two_se", "beyond_noise"])
    va, vb = pts.xs(a, level="model"), pts.xs(b, level="model")
    common = va.index.intersection(vb.index)
    diff = va.loc[common, OVERLAP] - vb.loc[common, OVERLAP]
    se = np.sqrt(va.loc[common, f"{OVERLAP}_se"] ** 2 + vb.loc[common, f"{OVERLAP}_se"] ** 2)
    return pd.DataFrame({"diff": diff, "two_se": 2 * se, "beyond_noise": diff.abs() > 2 * se})


def _encoding_lines(rows: pd.DataFrame) -> list[str]:
    enc = encoding_table(rows)
    prec = "bf16" if "bf16 texts/s" in enc else "fp32"
    tps = enc[f"{prec} texts/s"]
    within = ((enc[f"{prec} texts/s p95"] - enc[f"{prec} texts/s p5"]) / tps).median()
    lines = [f"- **Encoding cost** ({prec}, {len(enc)} models): every model has {enc['params (M)'].iloc[0]:.1f}M "
             f"parameters ({'identical' if enc['params (M)'].nunique() == 1 else 'NOT identical'} counts); "
             f"throughput {tps.min():.1f}-{tps.max():.1f} passages/s, a spread across models of "
             f"{(tps.max() - tps.min()) / tps.median():.0%} against {within:.0%} (p5-p95) between repeats of "
             f"one model; peak memory {enc[f'{prec} peak MiB'].min():.0f}-{enc[f'{prec} peak MiB'].max():.0f} MiB."]
    if prec == "bf16" and "fp32 texts/s" in enc:
        lines.append(f"- bf16 encodes {(enc['bf16 texts/s'] / enc['fp32 texts/s']).median():.2f}x as fast as fp32 "
                     f"(median over models); bf16 embeddings are at cosine >= {enc['bf16 cosine vs fp32'].min():.4f} "
                     "to the fp32 ones.")
    if "end-to-end ms" in enc:
        lines.append(f"- One question end to end (encode + exact search): {enc['end-to-end ms'].median():.1f} ms "
                     f"median, of which encoding {enc['query encode ms'].median():.1f} ms.")
    return lines


def _end_to_end_lines(rows: pd.DataFrame, datasets: Sequence[str]) -> list[str]:
    """Per dataset: the range of end-to-end latency (encode + search, p50) over every point and model."""
    lines = []
    for dataset in datasets:
        pts = points(rows, dataset)
        if "end_to_end_ms_p50" not in pts or pts["end_to_end_ms_p50"].isna().all():
            continue
        e2e = pts.dropna(subset=["end_to_end_ms_p50"])
        exact = e2e[e2e["index"] == "exact"]["end_to_end_ms_p50"]
        approx = e2e[e2e["index"] != "exact"]["end_to_end_ms_p50"]
        per_model = e2e.groupby("model", sort=False)["end_to_end_ms_p50"].median()
        lines.append(f"- **End to end on {dataset}** (one question encoded and searched, p50): "
                     f"{approx.min():.1f}-{approx.max():.1f} ms over the approximate points, "
                     f"{exact.min():.1f}-{exact.max():.1f} ms with exact search; median per model "
                     + ", ".join(f"{m} {v:.1f}" for m, v in per_model.items()) + " ms.")
    return lines


def conclusion(rows: pd.DataFrame, dureader: str, xquad: str = "xquad_r") -> str:
    """The answer to question 1 as markdown bullet points, every number read from ``rows``."""
    lines = _encoding_lines(rows)
    ex = exact_table(rows)
    if dureader in ex.index.get_level_values(0):
        d = ex.loc[dureader]
        lines.append(f"- **Exact search on {dureader}**: " + "; ".join(
            f"{m} nDCG@10 {r['ndcg_at_10']:.3f}, MRR@10 {r['mrr_at_10']:.3f}, R@50 {r['recall_at_50']:.3f}"
            for m, r in d.iterrows()) + f"; a flat scan costs {d['latency_ms_p50'].median():.2f} ms per question.")
    for dataset in (dureader, xquad):
        cheap = cheapest_table(rows, dataset, thresholds=(0.95,))
        if len(cheap):
            lines.append(f"- **Cheapest index keeping 95% of the exact top-10 on {dataset}**: " + "; ".join(
                f"{m}: {r['index']} {r['param']} ({r['latency_ms_p50']:.3f} ms, {r['bytes_per_vector']:.0f} B/vector)"
                if r["index"] != "none" else f"{m}: none" for (m, _), r in cheap.iterrows()) + ".")
    lines += _end_to_end_lines(rows, (dureader, xquad))
    by = _strategy_models(rows)
    diffs = difference_table(rows, (dureader, xquad))
    main = diffs[diffs["pair"].isin(["hybrid - mono", "hybrid - cross"])] if len(diffs) else diffs
    for r in main.itertuples(index=False):
        verdict = ("no point differs beyond noise" if r[6] == 0 else f"{r[6]} of {r.points} points differ by more "
                   "than two standard errors")
        lines.append(f"- **{r.pair} on {r.dataset}**: at identical index settings overlap@10 differs by "
                     f"{r[3]:+.3f} on average (largest {r[4]:+.3f}, {r.at}); {verdict}.")
    if main.empty:
        have = sorted(s for s in by if s != ZERO_SHOT)
        lines.append(f"- **Strategies**: trained models found: {', '.join(have) or 'none'}; hybrid vs mono / cross "
                     "needs the hybrid run and at least one of the others (train them with notebook 03 and rerun).")
    cl = clustering_table(rows, xquad)
    if len(cl):
        lines.append(f"- **Language clustering on {xquad}**: " + "; ".join(
            f"{m} silhouette {r['silhouette']:.2f}, {r['cells_dom50']:.0%} of IVF cells > 50% one language"
            for m, r in cl.iterrows()) + f" (with shuffled labels the purity is {cl['purity_shuffled'].mean():.2f}).")
    return "\n".join(lines)
