"""The alpha-axis figure of notebook 04 (input: :func:`lib.alpha_axis.alpha_table`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib.plots import empty_figure, legend_outside, seed_range

DATASET_STYLE = {"xquad_r": ("XQuAD-R", "tab:blue", "o"), "mlqa_r": ("MLQA-R", "tab:orange", "s")}
METRIC_LABEL = {"map": "mAP (higher is better)", "rank_distance": "rank distance (lower is better)"}
METRIC_TITLE = {"map": "mAP", "rank_distance": "rank distance"}


def _alpha_ticks(ax, alphas) -> None:
    names = {0.0: "0\ncross", 0.5: "0.5\npaper", 1.0: "1\nmono"}
    alphas = sorted(set(float(a) for a in alphas))
    ax.set_xticks(alphas, [names.get(a, f"{a:g}") for a in alphas], fontsize=8)


def figure_alpha_sweep(table: pd.DataFrame):
    """One panel per (metric, setting) of the table (mAP per setting, rank distance in multi) against
    alpha, one line per dataset with 95% intervals over seeds and questions; the best alpha of each line
    is starred and the alphas not worse than it (the best band) are filled."""
    if table.empty:
        return empty_figure("Retrieval quality against alpha", "no arms to compare")
    panels = [(m, s) for m in ("map", "rank_distance") for s in ("mono", "cross", "multi")
              if len(table[(table["metric"] == m) & (table["setting"] == s)])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels) + 2.2, 3.8), squeeze=False,
                             layout="constrained")
    for ax, (metric, setting) in zip(axes[0], panels):
        part = table[(table["metric"] == metric) & (table["setting"] == setting)]
        for i, (dataset, rows) in enumerate(part.groupby("dataset", sort=False)):
            label, colour, marker = DATASET_STYLE.get(dataset, (dataset, f"C{i}", "o"))
            rows = rows.sort_values("alpha")
            x = rows["alpha"].to_numpy(float) + 0.012 * (i - 0.5)
            y = rows["estimate"].to_numpy(float)
            err = np.vstack([y - rows["low"], rows["high"] - y]).clip(min=0)
            ax.errorbar(x, y, yerr=err, color=colour, capsize=3, lw=1.2, label=f"{label} (95% interval)")
            in_band = (rows["vs_best_outcome"] != "worse").to_numpy()
            ax.scatter(x[in_band], y[in_band], marker=marker, color=colour, zorder=3,
                       label=f"{label}: not worse than its best alpha")
            ax.scatter(x[~in_band], y[~in_band], marker=marker, facecolors="white", edgecolors=colour, zorder=3,
                       label=f"{label}: worse than its best alpha")
            best = (rows["vs_best_outcome"] == "reference").to_numpy()
            ax.scatter(x[best], y[best], marker="*", s=170, color=colour, edgecolors="black", zorder=4,
                       label=f"{label}: best alpha")
        _alpha_ticks(ax, part["alpha"])
        ax.set_title(f"{METRIC_TITLE[metric]}, {setting} setting", fontsize=10)
        ax.set_xlabel("alpha: share of monolingual batches")
        ax.set_ylabel(METRIC_LABEL[metric])
        ax.grid(alpha=0.3)
    legend_outside(axes.flat, axes[0][-1])
    seeds = seed_range(table.groupby("arm")["n_seeds"].max())
    fig.suptitle("Retrieval quality against alpha, the share of monolingual batches\n"
                 f"(95% intervals over {seeds} training seed(s) and questions; filled: not worse than the best alpha "
                 f"by the verdict rule, margin {table['margin'].iloc[0]:g} mAP)", fontsize=11)
    return fig
