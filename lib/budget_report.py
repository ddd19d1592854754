"""The budget-axis figure of notebook 04 (input: :func:`lib.budget_axis.comparisons_by_budget`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib import strategies
from lib.plots import empty_figure, legend_outside

DATASET_LABEL = {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}


def figure_budget(frame: pd.DataFrame, margin: float | None = None):
    """Claim 1's gaps (hybrid minus mono and minus cross, mAP, all languages) against the training
    budget: one panel per dataset x setting, 95% intervals over seeds and questions, the margin band."""
    part = frame[(frame["claim"] == 1) & (frame["metric"] == "map")]
    if "subset" in part:
        part = part[part["subset"] == "all"]
    if part.empty or part["steps"].nunique() < 2:
        return empty_figure("Claim 1 gaps against the training budget", "fewer than two budgets with results")
    panels = [(d, s) for d in ("xquad_r", "mlqa_r") for s in ("mono", "cross", "multi")
              if len(part[(part["dataset"] == d) & (part["setting"] == s)])]
    cols = 3
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 2.0, 3.3 * rows), squeeze=False,
                             layout="constrained")
    budgets = sorted(part["steps"].unique())
    for ax, (dataset, setting) in zip(axes.flat, panels):
        cell = part[(part["dataset"] == dataset) & (part["setting"] == setting)]
        if margin:
            ax.axhspan(-margin, margin, color="0.88", zorder=0, label=f"±{margin:g} equivalence margin")
        ax.axhline(0, color="0.3", lw=0.8)
        for i, (other, rows_) in enumerate(cell.groupby("b", sort=False)):
            rows_ = rows_.sort_values("steps")
            x = rows_["steps"].to_numpy(float) * (1 + 0.04 * (i - 0.5))
            y = rows_["estimate"].to_numpy(float)
            err = np.vstack([y - rows_["ci_low"], rows_["ci_high"] - y]).clip(min=0)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=strategies.color(other),
                        label=f"hybrid - {strategies.label(other)}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(int(b)) for b in budgets])
        ax.minorticks_off()
        ax.set_title(f"{DATASET_LABEL.get(dataset, dataset)}, {setting} setting", fontsize=10)
        ax.set_xlabel("training budget (optimizer steps of 32 pairs)")
        ax.set_ylabel("mAP difference")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    legend_outside(axes.flat, axes[0][-1])
    fig.suptitle("Claim 1 against the training budget: hybrid minus each specialist\n"
                 "(95% intervals over seeds and questions; inside the grey band the two are equivalent)", fontsize=11)
    return fig
