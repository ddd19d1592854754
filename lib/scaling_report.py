"""Tables, figures and the verdict of notebook 07 (the strategies as the backbone grows).

Moved out of :mod:`lib.scaling` (which runs the experiment) so that no compute
module imports matplotlib. Inputs are the frames notebook 07 writes:
``scaling.csv`` (:func:`lib.scaling.scaling_table`), ``07_*_estimates.csv``
and ``07_*_gaps.csv`` (:func:`lib.scaling.write_summaries`), so every figure
can be redrawn from ``results/<profile>/`` without the models.
"""
from __future__ import annotations

import re
import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib import strategies as strategy_registry
from lib.plots import empty_figure, legend_outside, seed_range
from lib.scaling import ZERO_SHOT, SizedModel, plan_frame

MLQA_GROUPS = {"same": "same-language subsets (7)", "cross": "cross-language subsets (42)", "all": "all 49 subsets"}
LAREQA_GROUPS = {"mono": "mono setting", "cross": "cross setting", "multi": "multi setting"}
PUBLISHED_MLQA_NDCG10 = {  # MTEB MLQARetrieval (validation) nDCG@10 as published, for orientation only
    "paraphrase-multilingual-MiniLM-L12-v2": 0.683,
    "LaBSE": 0.632,
    "multilingual-e5-small": 0.744,
    "multilingual-e5-base": 0.789,
    "multilingual-e5-large": 0.829,
}
OUTLIER_FACTOR = 1.5  # a run slower than this many times the median of its size's other runs is an outlier


# --------------------------------------------------------------------------
# Tables and the verdict


def with_size(frame: pd.DataFrame, models: Sequence[SizedModel], scaling: pd.DataFrame,
              key: str = "model") -> pd.DataFrame:
    """Attach strategy, layers and non-embedding parameters of each arm (a model without its seed, by
    the ``key`` column; ``lib.scaling_stats`` names its rows by arm)."""
    facts = plan_frame(models)[["model", "arm", "strategy", "layers", "backbone"]]
    facts = facts.merge(scaling[["model", "non_embedding_params", "encode_texts_per_s"]], on="model", how="left")
    facts = facts.drop(columns="model").drop_duplicates("arm")
    out = frame.merge(facts.rename(columns={"arm": key}), on=key, how="left")
    return out.sort_values(["layers", key], kind="stable").reset_index(drop=True)


def gap_pairs(models: Sequence[SizedModel], reference: str = "hybrid",
              others: Sequence[str] = ("mono", "cross")) -> list[tuple[str, str]]:
    """(hybrid arm, other arm) of the same size, for every size and other strategy present."""
    by_size: dict[tuple[str, int], dict[str, str]] = {}
    for m in models:
        by_size.setdefault((m.backbone, m.layers), {})[m.strategy] = m.arm
    return [(names[reference], names[o]) for names in by_size.values() if reference in names
            for o in others if o in names]


def attach_gap_sizes(gap_table: pd.DataFrame, models: Sequence[SizedModel], scaling: pd.DataFrame) -> pd.DataFrame:
    """Gap rows with the size of the pair and the strategy of ``model_b`` (``strategy_b``)."""
    out = with_size(gap_table, models, scaling, key="model_b")
    return out.rename(columns={"strategy": "strategy_b"})


def verdict_lines(estimates: pd.DataFrame, gap_table: pd.DataFrame, metric: str) -> list[str]:
    """Plain-language findings computed from the interval and gap tables (with size columns attached).

    ``estimates``: model, group, estimate, low, high, strategy, layers (n_seeds);
    ``gap_table``: model_a, model_b, group, estimate, low, high, p_value,
    outcome (``lib.stats.compare_verdict``), strategy_b, layers.
    """
    lines = []
    for group in sorted(gap_table["group"].unique()):
        part = gap_table[gap_table["group"] == group].sort_values("layers")
        for other in [s for s in ("mono", "cross") if s in set(part["strategy_b"])]:
            g = part[part["strategy_b"] == other]
            counts = g["outcome"].value_counts()
            cells = ", ".join(f"{int(r.layers)}L {r.estimate:+.3f} [{r.low:+.3f}, {r.high:+.3f}] {r.outcome}"
                              for r in g.itertuples())
            trend = g["estimate"].iloc[-1] - g["estimate"].iloc[0] if len(g) > 1 else float("nan")
            tally = ", ".join(f"{o} at {int(counts.get(o, 0))}" for o in ("better", "equivalent", "worse",
                                                                            "inconclusive"))
            lines.append(f"{metric} {group}: hybrid - {other} = {cells}; of {len(g)} sizes hybrid is {tally}; "
                         f"gap change smallest -> largest {trend:+.3f}.")
    for group in sorted(estimates["group"].unique()):
        part = estimates[estimates["group"] == group]
        largest = part[part["layers"] == part["layers"].max()]
        best = largest.sort_values("estimate", ascending=False).iloc[0]
        zero = largest[largest["strategy"] == ZERO_SHOT]
        text = (f"{metric} {group} at {int(best.layers)} layers: best {best.strategy} {best.estimate:.3f} "
                f"[{best.low:.3f}, {best.high:.3f}]")
        if len(zero):
            text += f"; zero-shot {zero['estimate'].iloc[0]:.3f}"
        lines.append(text + ".")
    return lines


def quality_table(estimates: pd.DataFrame, xquad: pd.DataFrame | None = None) -> pd.DataFrame:
    """The untuned model of every size (students and the full backbone, measured here) next to
    published MLQARetrieval figures of small multilingual encoders (``source`` says which is which).

    ``estimates``: notebook 07's MLQARetrieval intervals with size columns;
    ``xquad``: the XQuAD-R ones (optional). nDCG@10 over all 49 subsets; XQuAD-R
    mAP per setting.
    """
    zero = estimates[(estimates["strategy"] == ZERO_SHOT) & (estimates["group"] == "all")]
    rows = zero[["model", "layers", "non_embedding_params", "estimate", "low", "high"]].rename(
        columns={"estimate": "mlqa_retrieval_ndcg10", "low": "ndcg10_low", "high": "ndcg10_high"})
    if xquad is not None and len(xquad):
        x = xquad[xquad["strategy"] == ZERO_SHOT].pivot_table(index="model", columns="group", values="estimate")
        rows = rows.merge(x.add_prefix("xquad_r_map_").reset_index(), on="model", how="left")
    rows = rows.assign(source="measured here (untuned)").sort_values("layers")
    published = pd.DataFrame({"model": list(PUBLISHED_MLQA_NDCG10),
                              "mlqa_retrieval_ndcg10": list(PUBLISHED_MLQA_NDCG10.values()),
                              "source": "published (MTEB leaderboard), not measured here"})
    return pd.concat([rows, published], ignore_index=True)


def with_recipes(quality: pd.DataFrame, recipes: pd.DataFrame) -> pd.DataFrame:
    """The quality table with each distilled student's recipe beside its row (teacher layers copied, texts,
    steps, held-out cosine to the teacher, distillation seconds, bf16, the CPU it ran on)."""
    if recipes.empty:
        return quality
    extra = recipes.drop(columns=["student"]).rename(columns={"steps": "distill_steps", "texts": "distill_texts",
                                                              "bf16": "distill_bf16", "cpu_model": "distill_cpu"})
    extra["teacher_layers"] = extra["teacher_layers"].map(lambda v: " ".join(str(i) for i in v))
    return quality.merge(extra, on="layers", how="left")


# --------------------------------------------------------------------------
# Figures


def _params_label(x: str) -> str:
    return "non-embedding parameters (log scale)" if x == "non_embedding_params" else x


def plot_vs_size(ax, table: pd.DataFrame, *, x: str = "non_embedding_params", y: str = "estimate",
                 strategy_col: str = "strategy", label_col: str | None = None, title: str = "",
                 label_prefix: str = "") -> None:
    """One line per strategy of ``y`` (with low/high error bars when present) against ``x`` (log scale);
    order, colour and label of the strategies from :mod:`lib.strategies`."""
    present = sorted(set(table[strategy_col]), key=strategy_registry.order_key)
    for i, strategy in enumerate(present):
        part = table[table[strategy_col] == strategy].sort_values(x)
        err = None
        if {"low", "high"} <= set(part.columns):
            err = np.vstack([part[y] - part["low"], part["high"] - part[y]]).clip(min=0)
        dodge = 1 + 0.015 * (i - (len(present) - 1) / 2)  # side by side, so overlapping intervals stay readable
        name = part[label_col].iloc[0] if label_col else strategy_registry.label(strategy)
        ax.errorbar(part[x] * dodge, part[y], yerr=err, marker="o", capsize=3, label=label_prefix + name,
                    color=strategy_registry.color(strategy))
    ax.set_xscale("log")
    ax.set_xlabel(_params_label(x))
    ax.set_title(title)
    ax.grid(alpha=0.3)


def _size_ticks(ax, table: pd.DataFrame) -> None:
    """Tick every size at its parameter count, labelled with its layers."""
    sizes = table.drop_duplicates("layers").sort_values("non_embedding_params")
    ax.set_xticks(sizes["non_embedding_params"],
                  [f"{p / 1e6:.1f}M\n({int(k)} layer{'s' if int(k) != 1 else ''})"
                   for p, k in zip(sizes["non_embedding_params"], sizes["layers"])],
                  fontsize=8)
    ax.minorticks_off()


def plot_groups(table: pd.DataFrame, groups: Sequence[str], ylabel: str, title: str, *, gaps: bool = False,
                margin: float | None = None, group_titles: dict | None = None):
    """One panel per group: estimates (or hybrid gaps when ``gaps``) against non-embedding parameters,
    95% intervals over seeds and questions (``lib.scaling_stats``); the legend sits outside the panels."""
    table = table[table["group"].isin(groups)]
    if table.empty:
        return empty_figure(title, "no estimates for these groups")
    fig, axes = plt.subplots(1, len(groups), figsize=(4.4 * len(groups) + 2.2, 3.9), squeeze=False,
                             layout="constrained")
    for ax, group in zip(axes[0], groups):
        part = table[table["group"] == group]
        if gaps:
            part = part.assign(strategy=part["strategy_b"])
            if margin:
                ax.axhspan(-margin, margin, color="0.88", zorder=0,
                           label=f"±{margin:g} (notebook 04's equivalence margin)")
            ax.axhline(0, color="0.3", lw=0.8, label="no difference")
        titles = group_titles or (MLQA_GROUPS if "same" in groups else LAREQA_GROUPS)
        plot_vs_size(ax, part, title=titles.get(group, group), label_prefix="hybrid - " if gaps else "")
        if len(part):
            _size_ticks(ax, part)
        ax.set_ylabel(ylabel)
    legend_outside(axes[0], axes[0][-1])
    what = "hybrid minus each strategy at the same size" if gaps else "score of each strategy"
    column = "n_seeds_a" if gaps else "n_seeds"  # gaps: hybrid's seeds; scores: the trained arms' seeds
    n = table[column] if column in table else pd.Series(dtype=float)
    if not gaps and "strategy" in table:
        n = n[table["strategy"] != ZERO_SHOT]
    count = seed_range(n) if len(n) else ""
    seeds = f", {count} training seed{'' if count == '1' else 's'}" if count else ""
    fig.suptitle(f"{title}: {what}\n(95% intervals over seeds and questions{seeds})", fontsize=11)
    return fig


def figure_size_axis(sizes: pd.DataFrame, threads: int | None = None, axis: str = "truncated"):
    """Non-embedding parameters and encoding throughput per number of layers (``axis``: how the smaller
    sizes were made, ``"distilled"`` students or ``"truncated"`` copies)."""
    sizes = sizes.drop_duplicates("layers").sort_values("layers")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    axes[0].plot(sizes["layers"], sizes["non_embedding_params"] / 1e6, "o-", color="0.3")
    axes[0].set(xlabel="transformer layers", ylabel="non-embedding parameters (millions)",
                title="Model size")
    axes[1].plot(sizes["layers"], sizes["encode_texts_per_s"], "o-", color="0.3")
    where = f"{threads} threads, " if threads else ""
    axes[1].set(xlabel="transformer layers", ylabel="encoding throughput (texts / s)",
                title=f"Encoding speed ({where}MLQA paragraphs)")
    for ax in axes:
        ax.set_xticks(sizes["layers"])
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    made = {"distilled": "students distilled from the 12-layer backbone (lib.distill)",
            "truncated": "the backbone cut to its first k layers"}.get(axis, axis)
    fig.suptitle(f"The size axis: {made}")
    return fig


def _seed_of(model: str) -> int | None:
    m = re.search(r"_s(\d+)", str(model))
    return int(m.group(1)) if m else None


def training_cost_table(scaling: pd.DataFrame, run_times: pd.DataFrame | None = None,
                        factor: float = OUTLIER_FACTOR) -> pd.DataFrame:
    """Trained runs with ``train_seconds``, an ``outlier`` flag (slower than ``factor`` x the median of
    the other runs of the same size: same architecture and steps, so the extra time is machine load)
    and ``estimate_seconds``: for an outlier, the same strategy's other seeds' notebook-03 wall time
    (``run_times.csv``) minus the median non-training overhead of the same-size runs; else
    ``train_seconds``. ``estimate_source`` says which."""
    t = scaling[(scaling["strategy"] != ZERO_SHOT) & scaling["train_seconds"].notna()].copy()
    t["train_seconds"] = t["train_seconds"].astype(float)
    t["seed"] = t["model"].map(_seed_of)
    t["outlier"] = False
    for layers, grp in t.groupby("layers"):
        for idx in grp.index:
            others = grp.drop(index=idx)["train_seconds"]
            if len(others) and t.at[idx, "train_seconds"] > factor * others.median():
                t.at[idx, "outlier"] = True
    t["estimate_seconds"] = t["train_seconds"]
    t["estimate_source"] = "measured"
    if run_times is None or run_times.empty or not t["outlier"].any():
        return t
    nb = run_times[(run_times["notebook"] == "03_training") & ~run_times["run"].str.contains("alpha-")].copy()
    # a run executed again later (reusing its finished training) is timed again: its training is the longest row
    nb = nb.sort_values("seconds").drop_duplicates("run", keep="last")
    nb["strategy"] = nb["run"].str.extract(r"strategy-([^_]+)", expand=False)
    nb["seed"] = nb["run"].str.extract(r"seed-(\d+)", expand=False).astype(float)
    for idx in t.index[t["outlier"]]:
        row = t.loc[idx]
        same = t[(t["layers"] == row["layers"]) & ~t["outlier"]]
        wall = nb.set_index(["strategy", "seed"])["seconds"]
        overhead = [wall.get((s, float(seed))) - secs for s, seed, secs in
                    zip(same["strategy"], same["seed"], same["train_seconds"]) if (s, float(seed)) in wall.index]
        other_seeds = nb[(nb["strategy"] == row["strategy"]) & (nb["seed"] != row["seed"])]["seconds"]
        if overhead and len(other_seeds):
            t.at[idx, "estimate_seconds"] = float(other_seeds.median() - np.median(overhead))
            seeds = ", ".join(str(int(s)) for s in sorted(nb.loc[other_seeds.index, "seed"]))
            t.at[idx, "estimate_source"] = (f"seeds {seeds}: notebook-03 wall time {other_seeds.median():.0f} s "
                                            f"minus {np.median(overhead):.0f} s non-training overhead")
        else:
            t.at[idx, "estimate_seconds"] = float(same["train_seconds"].median()) if len(same) else np.nan
            t.at[idx, "estimate_source"] = "the median of the other strategies at this size"
    return t


def figure_training_cost(scaling: pd.DataFrame, run_times: pd.DataFrame | None = None):
    """Training time (optimizer steps only) against size per strategy; outlying timings (taken while
    other work shared the machine) are drawn as crosses and replaced on the line by the estimate from
    the strategy's other seeds, with the reason written in the figure."""
    t = training_cost_table(scaling, run_times)
    if t.empty:
        return empty_figure("Training time vs model size", "no trained runs with a train time")
    fig, ax = plt.subplots(figsize=(7.5, 4.4), layout="constrained")
    line = (t.groupby(["strategy", "layers", "non_embedding_params"], as_index=False)["estimate_seconds"]
            .agg(train_seconds="mean", low="min", high="max"))  # mean over seeds, bars from fastest to slowest
    plot_vs_size(ax, line, y="train_seconds", title="")
    _size_ticks(ax, t)
    reused = t[t["reused"].astype(str) == "True"] if "reused" in t else t.iloc[:0]
    if len(reused):
        ax.scatter(reused["non_embedding_params"], reused["estimate_seconds"], s=90, facecolors="none",
                   edgecolors="black", label="reused run (timed when first trained)", zorder=3)
    notes = []
    for _, r in t[t["outlier"]].iterrows():
        ax.scatter(r["non_embedding_params"], r["train_seconds"], marker="x", s=70, color="red", zorder=4,
                   label="outlier timing, not on the line")
        ax.annotate(f"{r['model']}: {r['train_seconds']:.0f} s", (r["non_embedding_params"], r["train_seconds"]),
                    xytext=(-8, 0), textcoords="offset points", ha="right", va="center", fontsize=8, color="red")
        ax.scatter(r["non_embedding_params"], r["estimate_seconds"], marker="s", s=45, facecolors="none",
                   edgecolors=strategy_registry.color(r["strategy"]), zorder=4,
                   label="estimate replacing the outlier (see title)")
        usual = t[(t["layers"] == r["layers"]) & ~t["outlier"]]["train_seconds"].median()
        notes.append(f"{r['model']} took {r['train_seconds']:.0f} s, {r['train_seconds'] / usual:.1f}x "
                     f"the other runs of its size with the same architecture and steps: it was timed while other "
                     f"work shared the machine. The line uses {r['estimate_source']} ({r['estimate_seconds']:.0f} s).")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(list(seen.values()), list(seen.keys()), loc="upper left", fontsize=8)
    ax.set_ylabel("training time, optimizer steps only (s)\nmean over seeds, bars: fastest to slowest")
    ax.set_ylim(bottom=0)
    title = "Training time vs model size"
    if len(t):
        title += f" ({int(t['steps'].dropna().iloc[0]) if 'steps' in t and t['steps'].notna().any() else '?'} steps)"
    fig.suptitle(title + "".join("\n" + textwrap.fill(n, 100) for n in notes), fontsize=10)
    return fig
