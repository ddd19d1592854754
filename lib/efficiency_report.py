"""Figures of notebook 06 (study question 1), drawn from the rows of ``results/<profile>/efficiency.csv``
(its tables and computed conclusion: :mod:`lib.efficiency_tables_report`).

Every figure shows arms (a strategy at one alpha; :mod:`lib.efficiency_tables_report`), so several seeds stay
readable: an arm's line or bar is the mean over its seeds, with the spread over seeds drawn beside it
(a band, thin per-seed lines or min-max bars and dots). Colours, labels and order come from
:mod:`lib.strategies` through :mod:`lib.plots`; two arms of one strategy (hybrid at two alphas) get two
shades and two line styles of its colour, so they never look like one.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex, to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

from lib import plots
from lib.efficiency import OVERLAP
from lib.efficiency_tables_report import (arm_order, arm_points, clustering_table, encoding_table, models,
                                          pareto_front, points)
from lib.models import ZERO_SHOT

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
LINESTYLES = ("-", "--", ":", "-.")


def axis_label(name: str) -> str:
    return AXIS_LABELS.get(name, name.replace("_", " "))


# --------------------------------------------------------------------------
# Arm styles


def arm_styles(arms: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Arm -> (colour, line style): the strategy's colour; further arms of one strategy (other alphas)
    alternately darker and lighter shades of it, and the k-th line style."""
    out, seen = {}, {}
    for arm in plots.ordered(arms):
        base = plots.strategy_of(arm)
        k = seen.get(base, 0)
        rgb, step = np.array(to_rgb(plots.color(arm))), 0.35 * ((k + 1) // 2)
        rgb = rgb * (1 - step) if k % 2 else rgb + (1 - rgb) * step  # k = 1 darker, k = 2 lighter, ...
        out[arm] = (to_hex(np.clip(rgb, 0, 1)), LINESTYLES[k % len(LINESTYLES)])
        seen[base] = k + 1
    return out


def arm_label(arm: str, n_seeds: int) -> str:
    """The arm's display label with its number of seeds (zero-shot: the untrained model, no seed)."""
    if plots.strategy_of(arm) == ZERO_SHOT:
        return plots.label(arm)
    return f"{plots.label(arm)} ({n_seeds} seed{'s' if n_seeds != 1 else ''})"


def _seeds(rows: pd.DataFrame) -> pd.Series:
    return models(rows).groupby("arm", sort=False)["model"].nunique()


def _arm_handles(rows: pd.DataFrame, styles: dict, lw: float = 2.0) -> list:
    seeds = _seeds(rows)
    return [Line2D([], [], color=styles[a][0], ls=styles[a][1], lw=lw, label=arm_label(a, seeds[a]))
            for a in arm_order(rows)]


# --------------------------------------------------------------------------
# Encoding cost (per model)


def figure_encoding(rows: pd.DataFrame):
    """Encoding throughput (median with p5-p95 bars over repeats) and peak memory per model and precision;
    models grouped by arm, colour = arm."""
    table = encoding_table(rows)
    precisions = [c.split()[0] for c in table.columns if c.endswith(" texts/s")]
    styles = arm_styles(table["arm"])
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.45 * len(table) * max(1, len(precisions)) + 3), 7.6),
                             layout="constrained", sharex=True)
    x = np.arange(len(table))
    width = 0.8 / max(1, len(precisions))
    hatches = [None, "//", "..", "xx"]
    colours = [styles[a][0] for a in table["arm"]]
    for i, p in enumerate(precisions):
        mid = table[f"{p} texts/s"].to_numpy()
        err = np.abs(np.vstack([mid - table[f"{p} texts/s p5"], table[f"{p} texts/s p95"] - mid]))
        axes[0].bar(x + i * width, mid, width, yerr=err, capsize=2, color=colours, hatch=hatches[i % 4],
                    edgecolor="white")
        axes[1].bar(x + i * width, table[f"{p} peak MiB"], width, color=colours, hatch=hatches[i % 4],
                    edgecolor="white")
    for ax, ylabel, title in zip(axes, ("passages / s (median,\nbars p5-p95 over repeats)",
                                        "peak memory above start (MiB)"),
                                 ("Encoding throughput", "Peak memory while encoding")):
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[1].set_xticks(x + width * (len(precisions) - 1) / 2, table.index, rotation=35, ha="right", fontsize=8)
    axes[1].set_xlabel("model (colour = arm; every seed of an arm is its own model)")
    seeds = table.groupby("arm", sort=False).size()
    handles = [Patch(facecolor=styles[a][0], label=arm_label(a, seeds[a])) for a in dict.fromkeys(table["arm"])]
    handles += [Patch(facecolor="0.6", hatch=hatches[i % 4], edgecolor="white", label=p)
                for i, p in enumerate(precisions)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8, frameon=False,
               title="colour = arm, hatch = precision")
    fig.suptitle("Encoding cost per model (same architecture: differences are timing noise)", fontsize=11)
    return fig


# --------------------------------------------------------------------------
# Sweeps


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


def plot_pareto(rows: pd.DataFrame, dataset: str, cost: str, quality: str, ax, styles: dict,
                log_cost: bool = True) -> None:
    """Per arm: every sweep point as the mean over seeds (marker = index family), the Pareto front of
    those means (thick line) and, with several seeds, each seed's own front (thin line)."""
    arm_pts, pts = arm_points(rows, dataset), points(rows, dataset)
    if cost not in arm_pts or quality not in arm_pts:
        ax.set_visible(False)
        return
    for arm in arm_order(rows):
        colour, ls = styles[arm]
        mine = arm_pts[arm_pts["arm"] == arm]
        for family, fam in mine.groupby("index"):
            ax.scatter(fam[cost], fam[quality], marker=MARKERS.get(family, "x"), color=colour, alpha=0.55, s=22)
        front = pareto_front(mine, cost, quality)
        ax.plot(front[cost], front[quality], color=colour, ls=ls, lw=1.8)
        seeds = pts[pts["arm"] == arm]
        if seeds["model"].nunique() > 1:
            for _, one in seeds.groupby("model"):
                seed_front = pareto_front(one, cost, quality)
                ax.plot(seed_front[cost], seed_front[quality], color=colour, ls="-", lw=0.6, alpha=0.4)
    if log_cost:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(axis_label(cost))
    ax.set_ylabel(axis_label(quality))
    ax.grid(alpha=0.3)


def figure_fronts(rows: pd.DataFrame, panels: Sequence[tuple[str, str, str]]):
    """One panel per (dataset, cost, quality): each arm's points (mean over seeds) and Pareto front, and its
    seeds' fronts as thin lines; legends below the panels, so no point is hidden."""
    styles = arm_styles(arm_order(rows))
    n_rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(n_rows, 2, figsize=(12, 4.0 * n_rows + 1.0), squeeze=False, layout="constrained")
    for ax, (dataset, cost, quality) in zip(axes.flat, panels):
        plot_pareto(rows, dataset, cost, quality, ax, styles)
        ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)}: {SHORT.get(quality, quality)} vs "
                     f"{SHORT.get(cost, cost)}", fontsize=10)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    families = [f for f in MARKERS if f in set(rows["index"])]
    handles = _arm_handles(rows, styles) + [Line2D([], [], color="0.4", lw=0.6, label="one seed's front")] + [
        Line2D([], [], marker=MARKERS[f], ls="", color="grey", label=FAMILY_LABELS.get(f, f)) for f in families]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False,
               title="thick line = an arm's Pareto front of its mean over seeds (marker = index family); "
                     "thin lines = each seed's front")
    fig.suptitle("Quality versus cost of every index configuration, per arm "
                 "(seed ranges and 95% query intervals of overlap@10: 06_search_knobs)", fontsize=11)
    return fig


def plot_knob(rows: pd.DataFrame, dataset: str, family: str, quality: str, ax, styles: dict) -> None:
    """Quality against the swept search parameter (nprobe / efSearch) of one family: per arm the mean
    over seeds (line), the range over seeds (band, with several seeds) and the 95% interval over the
    queries (±1.96 mean standard errors; bars)."""
    pts = arm_points(rows, dataset)
    sub = pts[pts["index"] == family].copy()
    if sub.empty or quality not in sub:
        ax.set_visible(False)
        return
    sub["knob"] = sub["param"].str.rsplit("=", n=1).str[-1].astype(float)
    arms = [a for a in arm_order(rows) if a in set(sub["arm"])]
    for i, arm in enumerate(arms):
        colour, ls = styles[arm]
        grp = sub[sub["arm"] == arm].sort_values("knob")
        dodge = 2 ** (0.04 * (i - (len(arms) - 1) / 2))  # side by side on the log axis
        se = grp.get(f"{quality}_se")
        ax.errorbar(grp["knob"] * dodge, grp[quality], yerr=None if se is None else 1.96 * se, marker="o",
                    ls=ls, color=colour, ms=3, capsize=2, lw=1.3)
        if grp["n_seeds"].max() > 1:
            ax.fill_between(grp["knob"] * dodge, grp[f"{quality}_min"], grp[f"{quality}_max"], color=colour,
                            alpha=0.12, lw=0)
    knob = sub["param"].iloc[0].rsplit(",", 1)[-1].split("=")[0]
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"{knob} (log scale)")
    ax.set_ylabel(axis_label(quality))
    ax.grid(alpha=0.3)


def figure_knobs(rows: pd.DataFrame, datasets: Sequence[str], quality: str = OVERLAP):
    """overlap@10 against nprobe (IVF) and efSearch (HNSW) per dataset and arm: means over seeds, seed
    ranges, 95% query intervals."""
    styles = arm_styles(arm_order(rows))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11.5, 3.6 * len(datasets) + 0.8), squeeze=False,
                             layout="constrained")
    for row, dataset in zip(axes, datasets):
        for ax, family in zip(row, ("ivf", "hnsw")):
            plot_knob(rows, dataset, family, quality, ax, styles)
            ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)}: {FAMILY_LABELS[family]}", fontsize=10)
    handles = _arm_handles(rows, styles) + [Patch(facecolor="0.6", alpha=0.3, label="range over seeds")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False,
               title="line = mean over the arm's seeds; band = min-max over seeds; bars: 95% interval over the queries")
    fig.suptitle("Search quality against the search-time parameter, per arm", fontsize=11)
    return fig


# --------------------------------------------------------------------------
# Language clustering


def figure_clustering(rows: pd.DataFrame, dataset: str = "xquad_r"):
    """Language clustering per arm (mean over seeds, bars min-max over seeds, dots = seeds): silhouette of
    the language labels; cell statistics against shuffled labels."""
    table = clustering_table(rows, dataset)
    if table.empty:
        return plots.empty_figure("Language clustering", f"no clustering rows for {dataset}")
    styles = arm_styles(table.index)
    per_model = rows[(rows["dataset"] == dataset) & (rows["index"] == "clustering")]
    per_model = per_model.pivot_table(index="model", columns="value_name", values="value")
    arm_of = models(rows).set_index("model")["arm"]
    fig, axes = plt.subplots(1, 2, figsize=(max(12.0, 1.6 * len(table) + 6), 4.2), layout="constrained")
    x = np.arange(len(table))

    def bars(ax, col, offset, width, **kw):
        mid = table[col].to_numpy()
        err = np.abs(np.vstack([mid - table[f"{col}_min"], table[f"{col}_max"] - mid]))
        ax.bar(x + offset, mid, width, yerr=err, capsize=2, edgecolor="white", **kw)
        for i, arm in enumerate(table.index):
            seeds = per_model.loc[arm_of[arm_of == arm].index.intersection(per_model.index), col]
            ax.scatter(np.full(len(seeds), x[i] + offset), seeds, s=9, color="k", zorder=3)

    bars(axes[0], "silhouette", 0, 0.6, color=[styles[a][0] for a in table.index])
    axes[0].set_ylabel("silhouette of the language labels\n(cosine; 1 = separate language clusters)")
    axes[0].set_title("Do languages form clusters?", fontsize=10)
    cells = [("cells_dom50", "IVF cells > 50% one language"), ("cells_dom80", "IVF cells > 80% one language"),
             ("purity", "purity (size-weighted)"), ("purity_shuffled", "purity with shuffled labels")]
    for i, (col, lab) in enumerate(cells):
        bars(axes[1], col, 0.2 * i, 0.2, label=lab, color=f"C{i + 4}", hatch="//" if "shuffled" in col else None)
    axes[1].set_ylabel("share of cells / purity (0-1)")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title("Language mix of k-means (IVF) cells", fontsize=10)
    handles = axes[1].get_legend_handles_labels()[0] + [
        Line2D([], [], marker="o", ls="", color="k", ms=3, label="one seed"),
        Line2D([], [], color="k", lw=1, label="min-max over seeds")]
    axes[1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    names = [arm_label(a, n) for a, n in zip(table.index, table["n_seeds"])]
    for ax, shift in zip(axes, (0, 0.3)):
        ax.set_xticks(x + shift, names, rotation=20, ha="right", fontsize=8)
        ax.set_xlabel("arm (bar = mean over seeds)")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Language clustering of the {DATASET_LABELS.get(dataset, dataset)} embeddings, per arm",
                 fontsize=11)
    return fig
