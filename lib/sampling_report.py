"""Figures of notebook 02 (what each batch strategy feeds the model) and the tables behind them.

Inputs are the sampled batches as :func:`lib.sampling.batches_frame` frames
(``results/<profile>/sampling/batches_<strategy>.csv``), one per strategy,
and the sampler's dataset probabilities (:meth:`BatchSampler.dataset_probabilities`).
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib import strategies
from lib.plots import color, empty_figure, label, ordered
from lib.sampling import batch_summary, language_matrix


def _order(frames: Mapping[str, pd.DataFrame]) -> list[str]:
    return ordered(frames)


def figure_language_heatmaps(frames: Mapping[str, pd.DataFrame], langs: Sequence[str], alpha: float,
                             steps: int, batch_size: int):
    """Share of sampled pairs per question x passage language, one panel per strategy, one colour scale."""
    names = _order(frames)
    mats = {n: language_matrix(frames[n], list(langs)) * 100 for n in names}
    vmax = max(1.0, max(float(m.to_numpy().max()) for m in mats.values()))
    fig, axes = plt.subplots(1, len(names), figsize=(5.4 * len(names) + 1, 5.2), layout="constrained")
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    for ax, name in zip(axes, names):
        mat = mats[name]
        im = ax.imshow(np.where(mat.to_numpy() == 0, np.nan, mat.to_numpy()), cmap=cmap, vmin=0, vmax=vmax)
        ax.set_xticks(range(len(mat.columns)), mat.columns, fontsize=8)
        ax.set_yticks(range(len(mat.index)), mat.index, fontsize=8)
        ax.set_xlabel("passage language")
        ax.set_ylabel("question language")
        ax.set_title(label(name) + (f" (alpha = {alpha:g})" if name == "hybrid" else ""))
    cbar = fig.colorbar(im, ax=list(axes), shrink=0.8)
    cbar.set_label("% of sampled pairs (white: none)")
    fig.suptitle(f"What each strategy feeds: question x passage language of {steps} batches of {batch_size} pairs")
    return fig


def summaries(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {n: batch_summary(frames[n]) for n in _order(frames)}


def figure_mono_share(frames: Mapping[str, pd.DataFrame], alpha: float, window: int = 50):
    """Share of monolingual batches in a sliding window over the steps, per strategy."""
    sums = summaries(frames)
    window = max(1, min(window, max(len(s) for s in sums.values())))
    fig, ax = plt.subplots(figsize=(9.5, 3.6), layout="constrained")
    for name, summary in sums.items():
        is_mono = (summary["batch_kind"] == "mono").astype(float)
        ax.plot(summary["step"], is_mono.rolling(window, min_periods=1).mean(), color=color(name), label=label(name))
    ax.axhline(alpha, ls="--", c="0.3", lw=1, label=f"alpha = {alpha:g} (hybrid's expected share)")
    ax.set(xlabel="training step (batch number)", ylabel=f"share of monolingual batches\n(window of {window} steps)",
           ylim=(-0.05, 1.05), title="Monolingual and cross-lingual batches over the steps")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def figure_languages_per_batch(frames: Mapping[str, pd.DataFrame]):
    """How many distinct question / passage languages meet in one batch, per strategy (grouped bars)."""
    sums = summaries(frames)
    names = list(sums)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True, layout="constrained")
    for ax, (side, what) in zip(axes, [("query_langs", "question"), ("doc_langs", "passage")]):
        counts = {n: s[side].value_counts() for n, s in sums.items()}
        ks = sorted(set().union(*[c.index for c in counts.values()]))
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            vals = counts[n].reindex(ks, fill_value=0).to_numpy()
            ax.bar(np.arange(len(ks)) + (i - (len(names) - 1) / 2) * width, vals, width, color=color(n),
                   label=label(n))
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set(xlabel=f"distinct {what} languages in the batch", title=f"{what.capitalize()} languages per batch")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("batches")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, title="strategy")
    fig.suptitle("How many languages meet in one batch")
    return fig


def dataset_share_table(frames: Mapping[str, pd.DataFrame], probabilities: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, batch kind and dataset: batches, observed share of that kind, sampling probability,
    and a 95% Wilson interval of the observed share."""
    per_batch = pd.concat([s.assign(strategy=n) for n, s in summaries(frames).items()])
    observed = per_batch.groupby(["strategy", "batch_kind", "dataset"]).size().rename("batches").reset_index()
    observed["of_kind"] = observed.groupby(["strategy", "batch_kind"])["batches"].transform("sum")
    observed["share_of_kind"] = observed["batches"] / observed["of_kind"]
    z = 1.959964
    n, p = observed["of_kind"], observed["share_of_kind"]
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    observed["low"], observed["high"] = centre - half, centre + half
    expected = probabilities.rename(columns={"kind": "batch_kind"})[["batch_kind", "dataset", "probability"]]
    return observed.merge(expected, on=["batch_kind", "dataset"], how="left")


def figure_dataset_shares(table: pd.DataFrame):
    """Observed share of each dataset among a strategy's batches of one kind (95% interval) against the
    sampling probability; kinds that only one dataset can supply (share 1 by construction) are named in
    the title instead of drawn."""
    counts = table.groupby("batch_kind")["dataset"].nunique()
    kinds = [k for k in ("mono", "cross") if counts.get(k, 0) > 1]
    trivial = [k for k in counts.index if counts[k] <= 1]
    if not kinds:
        return empty_figure("Which dataset each batch comes from",
                            "every batch kind has a single source dataset (share 1 by construction)")
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(6.5 * max(1, len(kinds)) + 1.5, 3.8), squeeze=False,
                             layout="constrained")
    for ax, kind in zip(axes[0], kinds):
        part = table[table["batch_kind"] == kind]
        names = ordered(part["strategy"])
        datasets = sorted(part["dataset"].unique())
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            rows = part[part["strategy"] == n].set_index("dataset").reindex(datasets)
            x = np.arange(len(datasets)) + (i - (len(names) - 1) / 2) * width
            err = np.vstack([rows["share_of_kind"] - rows["low"], rows["high"] - rows["share_of_kind"]]).clip(min=0)
            ax.bar(x, rows["share_of_kind"], width, color=color(n), yerr=err, capsize=3,
                   label=f"{label(n)}: observed (95% interval)")
        probs = part.drop_duplicates("dataset").set_index("dataset").reindex(datasets)["probability"]
        ax.hlines(probs, np.arange(len(datasets)) - 0.45, np.arange(len(datasets)) + 0.45, colors="k",
                  linestyles="--", lw=1.4, label="sampling probability")
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set(xlabel="dataset the batch is drawn from", ylabel=f"share of the strategy's {kind} batches",
               ylim=(0, 1.05), title=f"{kind}-lingual batches" if kind == "cross" else "monolingual batches")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=8)
    note = ""
    if trivial:
        only = {k: table.loc[table["batch_kind"] == k, "dataset"].iloc[0] for k in trivial}
        note = "\n" + textwrap.fill("; ".join(f"every {k} batch comes from {d} (the only dataset with {k} pairs), "
                                              "so its share is 1 by construction and not drawn"
                                              for k, d in only.items()), 100)
    fig.suptitle("Which dataset each batch comes from: observed share vs sampling probability" + note, fontsize=10)
    return fig


def conclusion(frames: Mapping[str, pd.DataFrame], alpha: float,
               probabilities: pd.DataFrame | None = None) -> list[str]:
    """Notebook 02's conclusion in plain lines: per strategy the monolingual share the sampler produced
    against its rule (:func:`lib.strategies.mono_share` of ``alpha``, with the binomial spread), the
    languages that meet in one batch, and (with ``probabilities``) where the batches came from."""
    sums = summaries(frames)
    lines = []
    for name, s in sums.items():
        n = len(s)
        mono = int((s["batch_kind"] == "mono").sum())
        expected = strategies.mono_share(name, alpha)
        sd = float(np.sqrt(n * expected * (1 - expected)))
        spread = (f", {(mono - n * expected) / sd:+.1f} binomial sd from the expected {n * expected:.0f}" if sd > 0
                  else (", exactly as its rule says" if mono == round(n * expected) else ", AGAINST its rule"))
        rule = (f"alpha = {alpha:g}" if strategies.mono_share(name, 0.0) != strategies.mono_share(name, 1.0)
                else f"{expected:.0%}")
        lines.append(f"{label(name)}: {mono} of {n} batches monolingual ({mono / n:.1%}; rule: {rule}){spread}.")
    lines.append("Languages per batch, mean question / passage languages: "
                 + "; ".join(f"{label(n)} {s['query_langs'].mean():.1f} / {s['doc_langs'].mean():.1f} "
                             f"({s['mono_pair_share'].mean():.0%} same-language pairs)" for n, s in sums.items())
                 + ".")
    if probabilities is not None:
        table = dataset_share_table(frames, probabilities)
        parts = []
        for kind in ("mono", "cross"):
            part = table[table["batch_kind"] == kind].groupby("dataset")[["batches", "probability"]].agg(
                {"batches": "sum", "probability": "first"})
            if part.empty:
                continue
            total = part["batches"].sum()
            parts.append(f"{kind} batches: " + ", ".join(
                f"{d} {r.batches / total:.0%} (probability {r.probability:.0%})" for d, r in part.iterrows()))
        if parts:
            lines.append("Source datasets, all strategies together: " + "; ".join(parts) + ".")
    return lines
