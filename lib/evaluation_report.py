"""Figures of notebook 04 (evaluation with the paper's protocol), drawn from its result files.

- :func:`figure_gaps`: hybrid - mono and hybrid - cross per dataset and
  setting with 95% intervals and the equivalence band, from
  ``comparisons.csv`` (the numbers the verdicts rest on), beside the
  per-seed macro mAP of every strategy (``metrics.csv``, axis not from 0);
- :func:`figure_seen_unseen`: the same gaps on all languages against the
  never-seen languages el, th, tr (claim 3);
- :func:`figure_heatmaps`: mAP per question x candidate language for every
  strategy and the hybrid differences on one symmetric scale
  (:func:`heatmap_diff_limit` gives a scale shared by several datasets).

Every function returns a matplotlib Figure; nothing here computes a statistic.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lib import paper_tables as tables
from lib.plots import MARGIN, MARGIN_LABEL, color, empty_figure, label, margin_band, ordered, strategy_of

SETTINGS = ("mono", "cross", "multi")
SUBSET_LABELS = {"all": "all languages", "never-seen": "never-seen languages (el, th, tr)"}
DATASET_LABELS = {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}


def _ds(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def _gap_rows(comparisons: pd.DataFrame, metric: str = "map") -> pd.DataFrame:
    rows = comparisons[(comparisons["metric"] == metric) & comparisons["ci_low"].notna()].copy()
    return rows[rows["arm_a"].map(strategy_of) == "hybrid"]


CLIP = 0.035  # gaps beyond this are drawn as an arrow at the edge with their numbers (keeps ±0.01 readable)


def _draw_gaps(ax, rows: pd.DataFrame, y_keys: Sequence, y_of, marker_of=None, annotate: bool = True) -> None:
    """Horizontal 95% interval per row at the y position ``y_of(row)``, coloured by ``arm_b``; a row
    whose interval reaches beyond ±CLIP is an arrow at the edge labelled with its estimate and interval."""
    for _, r in rows.iterrows():
        y = y_of(r)
        marker = marker_of(r) if marker_of else "o"
        far = max(abs(r["ci_low"]), abs(r["ci_high"])) > CLIP
        if far:
            sign = 1 if r["diff"] > 0 else -1
            ax.plot(sign * CLIP * 0.97, y, marker=">" if sign > 0 else "<", color=color(r["arm_b"]), ms=9, zorder=3)
            text = f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
            if annotate and isinstance(r.get("outcome"), str):
                text += f" {r['outcome']}"
            ax.annotate(text, (sign * CLIP * 0.9, y), xytext=(-4 * sign, 7), textcoords="offset points",
                        va="center", ha="right" if sign > 0 else "left", fontsize=7, color=color(r["arm_b"]))
            continue
        ax.errorbar(r["diff"], y, xerr=[[r["diff"] - r["ci_low"]], [r["ci_high"] - r["diff"]]], fmt=marker,
                    color=color(r["arm_b"]), capsize=3, ms=6, lw=1.5, zorder=3)
        if annotate and isinstance(r.get("outcome"), str):
            ax.annotate(r["outcome"], (r["ci_high"], y), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=7, color="0.25")


def _gap_axis(ax, xlabel: str, rows: pd.DataFrame) -> bool:
    """Linear x axis around the data, at most ±CLIP (larger gaps are arrows with their numbers)."""
    vals = rows[["ci_low", "ci_high"]].to_numpy(dtype=float)
    vals = vals[np.abs(vals) <= CLIP] if vals.size else vals
    low = min(float(np.nanmin(vals)) if vals.size else 0.0, -2 * MARGIN)
    high = max(float(np.nanmax(vals)) if vals.size else 0.0, 2 * MARGIN)
    clipped = bool((rows[["ci_low", "ci_high"]].abs() > CLIP).any().any())
    if clipped:
        low, high = -CLIP, CLIP
    ax.set_xlim(low * 1.1, high * 1.45)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    return clipped


CLIP_NOTE = f"arrow = gap beyond ±{CLIP} mAP, its value [95% interval] written beside it"


def figure_gaps(comparisons: pd.DataFrame, metrics: pd.DataFrame | None = None, subset: str = "all",
                datasets: Sequence[str] | None = None):
    """Top: hybrid - mono / hybrid - cross macro mAP per dataset and setting, 95% intervals, the ±0.01
    equivalence band and each comparison's outcome. Bottom (with ``metrics``): every seed's macro mAP per
    strategy and setting on an axis that does not start at 0."""
    rows = _gap_rows(comparisons[comparisons["subset"] == subset])
    if rows.empty:
        return empty_figure("hybrid gaps per setting", "no hybrid comparison in the claim comparisons")
    datasets = [d for d in (datasets or dict.fromkeys(rows["dataset"])) if d in set(rows["dataset"])]
    others = ordered(rows["arm_b"])
    has_seeds = metrics is not None and len(metrics)
    fig = plt.figure(figsize=(5.2 * len(datasets) + 1.6, 3.6 + (3.0 * len(datasets) if has_seeds else 0)),
                     layout="constrained")
    top, bottom = (fig.subfigures(2, 1, height_ratios=[1.1, 0.9 * len(datasets)]) if has_seeds else (fig, None))
    axes = np.atleast_1d(top.subplots(1, len(datasets), sharey=True))
    n = len(others)
    clipped = False
    for ax, dataset in zip(axes, datasets):
        part = rows[rows["dataset"] == dataset]
        margin_band(ax, vertical=True, label_it=ax is axes[0])
        _draw_gaps(ax, part, SETTINGS, lambda r: SETTINGS.index(r["setting"]) + 0.18 * (others.index(r["arm_b"])
                                                                                      - (n - 1) / 2))
        ax.set_yticks(range(len(SETTINGS)), [f"{s}" for s in SETTINGS])
        ax.set_ylim(len(SETTINGS) - 0.5, -0.5)
        ax.set_title(f"{_ds(dataset)}: hybrid minus each single strategy")
        clipped = _gap_axis(ax, "difference in macro mAP (hybrid - other), 95% interval", part) or clipped
    axes[0].set_ylabel("retrieval setting")
    handles = [Line2D([], [], marker="o", color=color(b), label=f"hybrid - {label(b)}") for b in others]
    handles.append(Patch(color="0.85", label=MARGIN_LABEL))
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    top.suptitle(f"Hybrid gaps ({SUBSET_LABELS.get(subset, subset)}) with 95% intervals; text = verdict outcome"
                 + (f"\n{CLIP_NOTE}" if clipped else ""), fontsize=11)
    if has_seeds:
        _seed_dots(bottom, metrics, datasets)
    return fig


def _seed_dots(fig, metrics: pd.DataFrame, datasets: Sequence[str]) -> None:
    macro = tables.macro_average(metrics[(metrics["metric"] == "map") & metrics["setting"].isin(SETTINGS)])
    arms = ordered(macro["arm"])
    axes = np.atleast_2d(fig.subplots(len(datasets), len(SETTINGS), squeeze=False))
    for row, dataset in zip(axes, datasets):
        for ax, setting in zip(row, SETTINGS):
            part = macro[(macro["dataset"] == dataset) & (macro["setting"] == setting)]
            for i, arm in enumerate(arms):
                vals = part.loc[part["arm"] == arm, "value"].to_numpy()
                if not len(vals):
                    continue
                jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else [0.0]
                ax.scatter(i + np.asarray(jitter), vals, color=color(arm), s=22, zorder=3,
                           label=f"{label(arm)} (one dot per seed)")
                ax.hlines(vals.mean(), i - 0.25, i + 0.25, color=color(arm), lw=1.5, zorder=2)
            ax.set_xticks(range(len(arms)), [label(a) for a in arms], rotation=20, ha="right", fontsize=8)
            ax.set_title(f"{_ds(dataset)} · {setting}", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
            if ax is row[0]:
                ax.set_ylabel("macro mAP (axis not from 0)")
            ax.set_xlabel("strategy")
    fig.suptitle("Macro mAP of every training seed (dot) and the mean over seeds (bar)", fontsize=10)


def figure_seen_unseen(comparisons: pd.DataFrame, dataset: str = "xquad_r"):
    """Claim 3: hybrid - mono and hybrid - cross mAP on all languages and on the never-seen ones,
    one panel per setting, 95% intervals and the ±0.01 equivalence band."""
    rows = _gap_rows(comparisons[comparisons["dataset"] == dataset])
    if rows.empty or "never-seen" not in set(rows["subset"]):
        return empty_figure(f"{_ds(dataset)}: seen vs never-seen languages",
                            "no never-seen comparison in the claim comparisons")
    others = ordered(rows["arm_b"])
    subsets = [s for s in ("all", "never-seen") if s in set(rows["subset"])]
    keys = [(b, s) for b in others for s in subsets]
    markers = {"all": "o", "never-seen": "s"}
    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(4.2 * len(SETTINGS) + 2.5, 3.6), sharey=True,
                             layout="constrained")
    clipped = False
    for ax, setting in zip(axes, SETTINGS):
        part = rows[rows["setting"] == setting]
        margin_band(ax, vertical=True, label_it=False)
        _draw_gaps(ax, part, keys, lambda r: keys.index((r["arm_b"], r["subset"])),
                   marker_of=lambda r: markers.get(r["subset"], "o"))
        ax.set_yticks(range(len(keys)), [f"- {label(b)}\n{SUBSET_LABELS[s].split(' (')[0]}" for b, s in keys],
                      fontsize=8)
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_title(f"{setting} setting")
        clipped = _gap_axis(ax, "difference in macro mAP, 95% interval", rows) or clipped
    axes[0].set_ylabel("hybrid minus ...")
    handles = [Line2D([], [], marker=markers[s], ls="", color=color(b),
                      label=f"hybrid - {label(b)}, {SUBSET_LABELS[s]}") for b in others for s in subsets]
    handles.append(Patch(color="0.85", label=MARGIN_LABEL))
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    fig.suptitle(f"{_ds(dataset)}, claim 3: does the hybrid gap hold on languages never seen in training? "
                 "(text = verdict outcome)" + (f"\n{CLIP_NOTE}" if clipped else ""), fontsize=11)
    return fig


def heatmap_panels(metrics: pd.DataFrame, dataset: str) -> tuple[dict, dict]:
    """(per-arm mAP matrices, hybrid-minus-other difference matrices) of one dataset."""
    arms = ordered(a for a in tables.with_arms(metrics[metrics["dataset"] == dataset])["arm"].unique())
    mats = {a: tables.language_matrix(metrics, dataset, a) for a in arms}
    mats = {a: m for a, m in mats.items() if m.size}
    hybrid = next((a for a in mats if strategy_of(a) == "hybrid"), None)
    diffs = {}
    if hybrid:
        for b in mats:
            if strategy_of(b) in ("mono", "cross"):
                diffs[b] = mats[hybrid] - mats[b]
    return mats, diffs


def heatmap_diff_limit(metrics: pd.DataFrame, datasets: Sequence[str]) -> float:
    """One symmetric colour limit for the difference panels of all ``datasets``."""
    lims = [np.nanmax(np.abs(m.to_numpy())) for d in datasets for m in heatmap_panels(metrics, d)[1].values()]
    lims = [x for x in lims if np.isfinite(x)]
    return float(np.ceil(max(lims) * 100) / 100) if lims else 0.05


def _heat(ax, mat: pd.DataFrame, cmap: str, vmin: float, vmax: float, cbar_label: str, annot: bool) -> None:
    im = ax.imshow(mat.to_numpy(dtype=float), cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal")
    ax.set_xticks(range(mat.shape[1]), mat.columns, fontsize=8)
    ax.set_yticks(range(mat.shape[0]), mat.index, fontsize=8)
    ax.set_xlabel("candidate language")
    ax.set_ylabel("question language")
    cbar = ax.figure.colorbar(im, ax=ax, shrink=0.75)
    cbar.set_label(cbar_label, fontsize=8)
    if annot:
        for (i, j), v in np.ndenumerate(mat.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                        color="white" if cmap == "viridis" and v < (vmin + vmax) / 2 else "black")


def figure_heatmaps(metrics: pd.DataFrame, dataset: str, diff_limit: float | None = None):
    """mAP per question x candidate language (mono on the diagonal) for every strategy (mean over seeds),
    then hybrid - mono and hybrid - cross on one symmetric scale (``diff_limit``, default: this dataset's)."""
    mats, diffs = heatmap_panels(metrics, dataset)
    if not mats:
        return empty_figure(f"{_ds(dataset)}: mAP per language pair", "no mAP rows for this dataset")
    lim = diff_limit if diff_limit is not None else heatmap_diff_limit(metrics, [dataset])
    panels = [(a, m, False) for a, m in mats.items()] + [(b, m, True) for b, m in diffs.items()]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 4.3 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    annot = max(m.shape[0] for _, m, _ in panels) <= 7
    for ax, (arm, mat, is_diff) in zip(axes.flat, panels):
        if is_diff:
            _heat(ax, mat, "RdBu", -lim, lim, f"mAP difference (hybrid - {label(arm)})", annot)
            ax.set_title(f"hybrid - {label(arm)}\n(blue: hybrid better; scale ±{lim:.2f})", fontsize=10)
        else:
            _heat(ax, mat, "viridis", 0.0, 1.0, "mAP (mean over seeds)", annot)
            ax.set_title(f"{label(arm)}: mAP", fontsize=10)
    fig.suptitle(f"{_ds(dataset)}: mAP per question language x candidate language "
                 "(diagonal = mono setting, off-diagonal = cross)", fontsize=11)
    return fig
