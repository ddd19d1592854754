"""Figures of notebook 01 (the data): language pairs, parallelism and token lengths.

Inputs: ``data_summary.csv`` (:func:`lib.training_data.data_summary`), the training
pairs (:func:`lib.training_data.load_training_pairs`), :func:`lib.training_data.parallelism`
and :func:`lib.data.token_lengths`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATASET_ORDER = ["xquad_r", "mlqa_r", "mlqa_retrieval", "mlqa_test", "tydiqa", "dureader_demo"]
LIMITS = ((64, ":"), (128, "--"), (256, "-"))


def _pair_matrix(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    sub = frame[frame["dataset"] == dataset]
    return sub.pivot_table(index="query_lang", columns="doc_lang", values="count", aggfunc="sum").fillna(0)


def _count_heatmap(ax, matrix: pd.DataFrame, title: str, cbar_label: str) -> None:
    im = ax.imshow(matrix.to_numpy(dtype=float), cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix.to_numpy(dtype=float)):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                color="white" if v > matrix.to_numpy().max() / 2 else "black")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns)
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set(title=title, xlabel="passage / context language", ylabel="question language")
    ax.figure.colorbar(im, ax=ax, shrink=0.7).set_label(cbar_label)


def figure_language_pairs(summary: pd.DataFrame, pairs: pd.DataFrame):
    """Questions per MLQARetrieval subset, MLQA test training pairs per language pair, TyDi pairs per language."""
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.8), gridspec_kw={"width_ratios": [1, 0.85, 1.1]},
                             layout="constrained")
    mlqa = summary[(summary["dataset"] == "mlqa_retrieval") & (summary["role"] == "question")]
    _count_heatmap(axes[0], _pair_matrix(mlqa, "mlqa_retrieval"), "MLQARetrieval (MLQA dev): questions per subset",
                   "questions")
    _count_heatmap(axes[1], _pair_matrix(summary[summary["role"] == "pair"], "mlqa_test"),
                   "MLQA test: training pairs (train + val)", "pairs")
    tydi = pairs[pairs["dataset"] == "tydiqa"].groupby(["query_lang", "positive"]).size().unstack(fill_value=0)
    bottom = np.zeros(len(tydi))
    for kind, colour in (("sentence", "tab:blue"), ("paragraph", "tab:orange")):
        if kind in tydi:
            axes[2].bar(tydi.index, tydi[kind], bottom=bottom, color=colour, label=f"{kind} positive")
            bottom += tydi[kind].to_numpy()
    axes[2].set(title="TyDi QA GoldP: monolingual training pairs (train + val)", xlabel="language",
                ylabel="pairs")
    axes[2].legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, title="positive")
    fig.suptitle("Language pairs of the evaluation and training data")
    return fig


def figure_parallelism(par: pd.DataFrame, datasets=("xquad_r", "mlqa_r", "mlqa_test")):
    """Items per number of language versions (questions and passages), one panel per dataset."""
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), layout="constrained")
    for ax, dataset in zip(np.atleast_1d(axes), datasets):
        table = par[par["dataset"] == dataset].pivot_table(index="k", columns="side", values="items", fill_value=0)
        width = 0.8 / max(1, table.shape[1])
        for i, side in enumerate(table.columns):
            ax.bar(np.arange(len(table)) + (i - (table.shape[1] - 1) / 2) * width, table[side], width,
                   label=f"{side} languages", color=f"C{i}")
        ax.set_xticks(range(len(table)), [str(k) for k in table.index])
        ax.set(title=dataset, xlabel="languages per item (k)", ylabel="items",
               ylim=(0, 1.3 * max(1, table.to_numpy().max())))
        ax.legend(loc="upper left", fontsize=8, ncols=2)
    fig.suptitle("How parallel the items are")
    return fig


def figure_token_lengths(lengths: pd.DataFrame, ncols: int = 4):
    """Token lengths per dataset, role and language (boxes) with the 64 / 128 / 256 limits."""
    groups = lengths.groupby(["dataset", "role"])
    keys = sorted(groups.groups, key=lambda k: (DATASET_ORDER.index(k[0]) if k[0] in DATASET_ORDER else 99,
                                                k[1] != "question", k[1]))
    nrows = int(np.ceil(len(keys) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.1 * nrows), squeeze=False, layout="constrained")
    for ax, key in zip(axes.flat, keys):
        sub = groups.get_group(key)
        langs = sorted(sub["lang"].unique())
        ax.boxplot([sub.loc[sub["lang"] == lang, "tokens"].to_numpy() for lang in langs], showfliers=False,
                   patch_artist=True, boxprops={"facecolor": "tab:blue", "alpha": 0.6})
        ax.set_xticks(range(1, len(langs) + 1), langs, fontsize=8)
        for limit, style in LIMITS:
            ax.axhline(limit, color="grey", linestyle=style, linewidth=0.8, label=f"{limit} tokens")
        ax.set(title=f"{key[0]} · {key[1]}", xlabel="language", ylabel="tokens")
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(LIMITS), title="length limits")
    fig.suptitle("Token lengths (boxes: quartiles, whiskers 1.5 IQR, outliers hidden)")
    return fig


def _langs_of(frame: pd.DataFrame, column: str) -> str:
    return " ".join(sorted(set(frame[column]) - {""}))


def conclusion(summary: pd.DataFrame, par: pd.DataFrame, pairs: pd.DataFrame | None = None,
               lengths: pd.DataFrame | None = None, limit: int = 128) -> list[str]:
    """Notebook 01's conclusion in plain lines, computed from its tables.

    ``summary``: :func:`lib.training_data.data_summary`; ``par``: :func:`lib.training_data.parallelism`;
    ``pairs``: the training pairs (their ``positive`` column); ``lengths``: :func:`lib.data.token_lengths`
    (the share of texts over ``limit`` tokens per role).
    """
    summary = summary.fillna({"query_lang": "", "doc_lang": ""})
    lines = []
    train = summary[summary["role"] == "pair"]
    for name in [d for d in DATASET_ORDER if d in set(train["dataset"])]:
        part = train[train["dataset"] == name]
        split = part.groupby("split")["count"].sum()
        per_lang = part.groupby("query_lang")["count"].sum().sort_values(ascending=False, kind="stable")
        lines.append(f"Training pairs, {name}: {int(split.sum()):,} ({int(split.get('train', 0)):,} train / "
                     f"{int(split.get('val', 0)):,} val); questions in {_langs_of(part, 'query_lang')}, passages in "
                     f"{_langs_of(part, 'doc_lang')}; per question language: "
                     + ", ".join(f"{lang} {int(n):,}" for lang, n in per_lang.items()) + ".")
    evaluation = summary[summary["role"].isin(["question", "candidate"])]
    parts = []
    for name in [d for d in DATASET_ORDER if d in set(evaluation["dataset"])]:
        part = evaluation[evaluation["dataset"] == name]
        sizes = part.groupby("role")["count"].sum()
        langs = sorted((set(part["query_lang"]) | set(part["doc_lang"])) - {""})
        parts.append(f"{name} {int(sizes.get('question', 0)):,} questions / {int(sizes.get('candidate', 0)):,} "
                     f"candidates ({len(langs)} language{'s' if len(langs) != 1 else ''})")
    if parts:
        lines.append("Evaluation sets: " + "; ".join(parts) + ".")
    for (name, side), part in par.groupby(["dataset", "side"], sort=False):
        k = np.repeat(part["k"].to_numpy(), part["items"].to_numpy())
        if not len(k):
            continue
        lines.append(f"Parallelism, {name} ({side}s): {len(k):,} items, languages per item median "
                     f"{float(np.median(k)):g} (min {int(k.min())}, max {int(k.max())}); "
                     f"{float((k >= 2).mean()):.0%} exist in two or more languages.")
    if pairs is not None and "positive" in pairs.columns and len(pairs):
        share = (pairs["positive"] == "sentence").groupby(pairs["dataset"]).mean()
        lines.append("Sentence positives (the rest are whole paragraphs): "
                     + ", ".join(f"{d} {s:.0%}" for d, s in share.items()) + ".")
    if lengths is not None and len(lengths):
        over = (lengths["tokens"] > limit).groupby(lengths["role"]).mean().sort_values(kind="stable")
        lines.append(f"Texts over {limit} tokens: " + ", ".join(f"{r} {s:.1%}" for r, s in over.items()) + ".")
    seen = set(train["query_lang"]) | set(train["doc_lang"])
    unseen = {}
    for name in [d for d in DATASET_ORDER if d in set(evaluation["dataset"])]:
        part = evaluation[evaluation["dataset"] == name]
        for lang in sorted((set(part["query_lang"]) | set(part["doc_lang"])) - seen - {""}):
            unseen.setdefault(lang, []).append(name)
    if unseen:
        plural = "s" if len(unseen) != 1 else ""
        lines.append(f"Never seen in training ({len(unseen)} language{plural}, evaluation only): "
                     + ", ".join(f"{lang} ({', '.join(ds)})" for lang, ds in sorted(unseen.items())) + ".")
    else:
        lines.append("Every evaluation language occurs in the training pairs.")
    return lines
