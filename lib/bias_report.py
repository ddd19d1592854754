"""Figures of notebook 05 (language bias in the multilingual pool).

- :func:`figure_rank_distance` needs the per-question frame of
  :func:`lib.paper_tables.bias_frame` (per-query result files, not kept in git);
- :func:`figure_top10_same_language` and :func:`figure_own_vs_other` draw the
  per-strategy summary (``05_bias_summary.csv``); given the per-question frame
  too they add 95% bootstrap intervals over questions (resampled within each
  question language, mean over seeds per question).
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from lib import stats
from lib.plots import color, empty_figure, label, ordered

DATASET_LABELS = {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}
NO_INTERVALS = "no intervals: the per-question files are not available (run notebook 05)"


def _ds(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def bootstrap_intervals(bias: pd.DataFrame, column: str, *, only_complete: bool = False, scale: float = 1.0,
                        n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (dataset, arm): 95% bootstrap interval of the macro mean (over question languages) of
    ``column`` averaged over the seeds of each question. ``bias`` needs ``dataset``, ``arm``,
    ``query_id``, ``query_lang`` and ``column``."""
    rows = bias[bias["complete"]] if only_complete else bias
    rows = rows.dropna(subset=[column])
    out = []
    for (dataset, arm), grp in rows.groupby(["dataset", "arm"]):
        per_q = grp.groupby(["query_id", "query_lang"])[column].mean().reset_index()
        if len(per_q) < 2:
            continue
        ci = stats.bootstrap_ci(per_q[column].to_numpy() * scale, groups=per_q["query_lang"].to_numpy(),
                                n_bootstrap=n_bootstrap, seed=seed)
        out.append({"dataset": dataset, "arm": arm, "low": ci["low"], "high": ci["high"]})
    return pd.DataFrame(out, columns=["dataset", "arm", "low", "high"])


def figure_top10_same_language(summary: pd.DataFrame, n_langs: Mapping[str, int],
                               intervals: pd.DataFrame | None = None):
    """Share of the top 10 pooled candidates in the question's language per strategy, one panel per
    dataset that has questions covering every language, with the no-preference level 1 / n_langs."""
    summary = summary.reset_index() if "dataset" not in summary.columns else summary
    share = summary.dropna(subset=["top10_same_lang_share"])
    datasets = [d for d in dict.fromkeys(summary["dataset"])]
    drawn = [d for d in datasets if d in set(share["dataset"])]
    missing = [d for d in datasets if d not in drawn]
    if not drawn:
        return empty_figure("Same-language candidates in the top 10", "no dataset has questions in every language")
    fig, axes = plt.subplots(1, len(drawn), figsize=(6.4 * len(drawn), 4.4), squeeze=False,
                             layout="constrained")
    for ax, dataset in zip(axes[0], drawn):
        part = share[share["dataset"] == dataset].set_index("arm")
        arms = ordered(part.index)
        values = part.loc[arms, "top10_same_lang_share"].to_numpy()
        err = None
        if intervals is not None and len(intervals):
            ci = intervals[intervals["dataset"] == dataset].set_index("arm").reindex(arms)
            err = np.vstack([values - ci["low"], ci["high"] - values]).clip(min=0)
        ax.bar(range(len(arms)), values, color=[color(a) for a in arms], yerr=err, capsize=4,
               label="_bars")
        for i, v in enumerate(values):
            ax.annotate(f"{v:.2f}", (i, v), xytext=(8, 3), textcoords="offset points", ha="left", fontsize=8)
        level = 1 / n_langs[dataset]
        ax.axhline(level, ls="--", lw=1.2, color="0.3", label=f"no language preference: 1/{n_langs[dataset]} "
                                                            f"= {level:.2f}")
        ax.set_xticks(range(len(arms)), [label(a) for a in arms], rotation=15, ha="right")
        ax.set_xlabel("strategy")
        ax.set_ylabel("share of the top 10 candidates\nin the question's language")
        ax.set_ylim(0, max(1.0, float(np.nanmax(values)) * 1.15))
        ax.set_title(f"{_ds(dataset)}" + (" (bars: mean over seeds, 95% interval)" if err is not None else ""),
                     fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    note = []
    if missing:
        note.append(", ".join(_ds(d) for d in missing) + " not shown: no item covers all its languages, "
                    "so no question qualifies")
    if intervals is None or not len(intervals):
        note.append(NO_INTERVALS)
    fig.suptitle("Same-language candidates among the top 10 of the pooled ranking"
                 + "".join("\n" + textwrap.fill(n, 90) for n in note), fontsize=10)
    return fig


def figure_own_vs_other(summary: pd.DataFrame, intervals: Mapping[str, pd.DataFrame] | None = None):
    """Mean rank of the own-language relevant candidate against the mean rank of the other languages'
    relevant candidates, per strategy, one panel per dataset (``intervals``: column -> intervals frame)."""
    summary = summary.reset_index() if "dataset" not in summary.columns else summary
    datasets = list(dict.fromkeys(summary["dataset"]))
    if not datasets:
        return empty_figure("Own-language vs other-language relevant candidates", "no bias summary rows")
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets) + 2.4, 4.4), squeeze=False,
                             layout="constrained")
    kinds = [("own_rank", "own-language relevant candidate", "///"),
             ("other_rank", "other languages' relevant candidates (mean)", None)]
    with_ci = bool(intervals)
    for ax, dataset in zip(axes[0], datasets):
        part = summary[summary["dataset"] == dataset].set_index("arm")
        arms = ordered(part.index)
        for k, (col, _, hatch) in enumerate(kinds):
            values = part.loc[arms, col].to_numpy(dtype=float)
            err = None
            if with_ci and col in intervals:
                ci = intervals[col]
                ci = ci[ci["dataset"] == dataset].set_index("arm").reindex(arms)
                err = np.vstack([values - ci["low"], ci["high"] - values]).clip(min=0)
            ax.bar(np.arange(len(arms)) + (k - 0.5) * 0.4, values, 0.4, color=[color(a) for a in arms],
                   hatch=hatch, edgecolor="white" if hatch else None, yerr=err, capsize=3)
        ax.set_xticks(range(len(arms)), [label(a) for a in arms], rotation=15, ha="right")
        ax.set_xlabel("strategy")
        ax.set_ylabel("mean rank in the pooled\nranking (1 = top)")
        ax.set_title(_ds(dataset), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="0.6", hatch=h, edgecolor="white", label=t)
               for _, t, h in kinds]
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, borderaxespad=0,
                       title="bar (colour = strategy)")
    fig.suptitle("Own-language vs other-language relevant candidates: mean rank per question"
                 + ("" if with_ci else f"\n{NO_INTERVALS}"), fontsize=10)
    return fig


def figure_rank_distance(bias: pd.DataFrame, datasets: Sequence[str]):
    """Per-question rank distance per strategy (boxes: quartiles, whiskers 1.5 IQR, log scale; diamond:
    mean), one panel per dataset. ``bias`` is :func:`lib.paper_tables.bias_frame` with a ``dataset`` column."""
    if bias.empty:
        return empty_figure("Rank distance per question", "no per-question rows")
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False,
                             layout="constrained")
    for ax, dataset in zip(axes[0], datasets):
        part = bias[(bias["dataset"] == dataset) & bias["rank_distance"].notna()]
        arms = ordered(part["arm"])
        data = [part.loc[part["arm"] == a, "rank_distance"].to_numpy() for a in arms]
        box = ax.boxplot(data, positions=range(len(arms)), showfliers=False, patch_artist=True, widths=0.6,
                         medianprops={"color": "k"})
        for patch, arm in zip(box["boxes"], arms):
            patch.set_facecolor(color(arm))
            patch.set_alpha(0.45)
        ax.plot(range(len(arms)), [d.mean() for d in data], "D", color="k", label="mean")
        ax.set_yscale("log")
        ax.set_xticks(range(len(arms)), [label(a) for a in arms], rotation=15, ha="right")
        ax.set_xlabel("strategy")
        ax.set_ylabel("rank distance (ranks, log scale)")
        ax.set_title(f"{_ds(dataset)}: rank distance per question", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0][-1].legend(handles=[Line2D([], [], marker="D", ls="", color="k", label="mean over questions"),
                                Line2D([], [], color="k", label="median"),
                                plt.Rectangle((0, 0), 1, 1, facecolor="0.7",
                                              label="quartiles (whiskers 1.5 IQR)")],
                       loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, borderaxespad=0)
    fig.suptitle("Rank distance: lowest- minus highest-ranked relevant candidate (lower = less language bias)",
                 fontsize=10)
    return fig


def conclusion(rank_distance: pd.DataFrame, summary: pd.DataFrame, n_langs: Mapping[str, int],
               comparisons: pd.DataFrame | None = None) -> list[str]:
    """Notebook 05's conclusion in plain lines.

    ``rank_distance``: mean rank distance, one row per arm, one column per dataset (the ``ours`` rows of
    :func:`lib.paper_tables.beside_paper_rd`); ``summary``: ``05_bias_summary.csv`` indexed by
    (dataset, arm); ``comparisons``: notebook 04's ``comparisons.csv`` (the rank-distance rows of hybrid
    against mono give the interval of the difference over seeds and questions), optional.
    """
    lines = []
    arms = ordered(rank_distance.index)
    for d in rank_distance.columns:
        col = rank_distance[d].dropna()
        if col.empty:
            continue
        text = ", ".join(f"{label(a)} {col[a]:.1f}" for a in arms if a in col.index)
        lines.append(f"{_ds(d)}: mean rank distance {text} (lower: less language bias).")
        if not {"hybrid", "mono"} <= set(col.index):
            continue
        rel = col["hybrid"] / col["mono"] - 1
        line = f"{_ds(d)}: hybrid against mono {rel:+.1%} ({col['hybrid'] - col['mono']:+.2f} ranks)"
        if comparisons is not None and len(comparisons):
            rows = comparisons[(comparisons["metric"] == "rank_distance") & (comparisons["dataset"] == d)
                               & (comparisons["a"] == "hybrid") & (comparisons["b"] == "mono")
                               & (comparisons.get("subset", "all") == "all")]
            if len(rows):
                r = rows.iloc[0]
                line += (f", 95% interval {r['ci_low'] / col['mono']:+.1%} to {r['ci_high'] / col['mono']:+.1%} "
                         f"({r['ci_low']:+.2f} to {r['ci_high']:+.2f} ranks; notebook 04's claim {r['claim']}: "
                         f"{r['outcome']})")
        lines.append(line + ".")
    for d in dict.fromkeys(summary.index.get_level_values(0)):
        part = summary.loc[d]
        share = part["top10_same_lang_share"].dropna()
        if len(share):
            lines.append(f"{_ds(d)}: share of the top 10 in the question's language "
                         + ", ".join(f"{label(a)} {share[a]:.0%}" for a in ordered(share.index))
                         + (f" (no preference: {1 / n_langs[d]:.0%})" if d in n_langs else "") + ".")
        own = part[["own_rank", "other_rank"]].dropna()
        if len(own):
            lines.append(f"{_ds(d)}: own-language relevant candidate at rank / the other languages' at rank "
                         + ", ".join(f"{label(a)} {own.loc[a, 'own_rank']:.1f} / {own.loc[a, 'other_rank']:.1f}"
                                     for a in ordered(own.index)) + ".")
    return lines
