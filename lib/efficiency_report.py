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

import numpy as np
import pandas as pd

from lib import strategies
from lib.efficiency import DUREADER_METRICS, FAMILIES, OVERLAP, POOL_METRICS, ZERO_SHOT

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
    keep = [*DUREADER_METRICS, *POOL_METRICS, "latency_ms_p50", "batch_qps_p50", "bytes_per_vector"]
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
# Figures

MARKERS = {"exact": "*", "ivf": "o", "hnsw": "^", "pq": "s", "sq": "D", "trunc": "v"}


def plot_pareto(pts: pd.DataFrame, cost: str, quality: str, ax, log_cost: bool = True) -> None:
    """Every point (marker = index family) and each model's Pareto front (line), one colour per model."""
    from matplotlib.ticker import NullFormatter

    for i, (model, grp) in enumerate(pts.groupby("model", sort=False)):
        colour = f"C{i}"
        for family, fam in grp.groupby("index"):
            ax.scatter(fam[cost], fam[quality], marker=MARKERS.get(family, "x"), color=colour, alpha=0.4, s=20)
        front = pareto_front(grp, cost, quality)
        ax.plot(front[cost], front[quality], "-", color=colour, label=model, lw=1.4)
    if log_cost:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(cost)
    ax.set_ylabel(quality)
    ax.grid(alpha=0.3)


def plot_knob(pts: pd.DataFrame, family: str, quality: str, ax) -> None:
    """Quality against the swept search parameter (nprobe / efSearch) of one family, one line per model."""
    sub = pts[pts["index"] == family].copy()
    if sub.empty:
        ax.set_visible(False)
        return
    sub["knob"] = sub["param"].str.rsplit("=", n=1).str[-1].astype(float)
    for model, grp in sub.groupby("model", sort=False):
        grp = grp.sort_values("knob")
        ax.plot(grp["knob"], grp[quality], "o-", label=model, ms=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(sub["param"].iloc[0].rsplit(",", 1)[-1].split("=")[0])
    ax.set_ylabel(quality)
    ax.grid(alpha=0.3)


def figure_encoding(rows: pd.DataFrame):
    """Encoding throughput (with p5-p95 bars) and peak memory per model and precision."""
    import matplotlib.pyplot as plt

    table = encoding_table(rows)
    precisions = [c.split()[0] for c in table.columns if c.endswith(" texts/s")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(table))
    width = 0.8 / max(1, len(precisions))
    for i, p in enumerate(precisions):
        mid = table[f"{p} texts/s"].to_numpy()
        err = np.abs(np.vstack([mid - table[f"{p} texts/s p5"], table[f"{p} texts/s p95"] - mid]))
        axes[0].bar(x + i * width, mid, width, yerr=err, capsize=3, label=p)
        axes[1].bar(x + i * width, table[f"{p} peak MiB"], width, label=p)
    for ax, label in zip(axes, ("passages / s (median, p5-p95)", "peak memory above start (MiB)")):
        ax.set_xticks(x + width * (len(precisions) - 1) / 2, table.index, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_fronts(rows: pd.DataFrame, panels: Sequence[tuple[str, str, str]]):
    """One panel per (dataset, cost, quality): every sweep point and each model's Pareto front."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n_rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(n_rows, 2, figsize=(11, 3.8 * n_rows), squeeze=False)
    for ax, (dataset, cost, quality) in zip(axes.flat, panels):
        plot_pareto(points(rows, dataset), cost, quality, ax)
        ax.set_title(dataset, fontsize=10)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    handles = [Line2D([], [], marker=m, ls="", color="grey", label=f) for f, m in MARKERS.items()]
    axes[0, 1].legend(handles=handles, fontsize=7, loc="lower right", title="index")
    fig.tight_layout()
    return fig


def figure_knobs(rows: pd.DataFrame, datasets: Sequence[str], quality: str = OVERLAP):
    """overlap@10 against nprobe (IVF) and efSearch (HNSW) per dataset and model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.4 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets):
        pts = points(rows, dataset)
        for ax, family in zip(row, ("ivf", "hnsw")):
            plot_knob(pts, family, quality, ax)
            ax.set_title(f"{dataset}: {family}", fontsize=10)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_clustering(rows: pd.DataFrame, dataset: str = "xquad_r"):
    """Language clustering per model: silhouette of the language labels; cell statistics vs shuffled labels."""
    import matplotlib.pyplot as plt

    table = clustering_table(rows, dataset)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(table))
    axes[0].bar(x, table["silhouette"])
    axes[0].set_ylabel("silhouette of language labels (cosine)")
    bars = [("cells_dom50", "cells > 50% one language"), ("cells_dom80", "cells > 80% one language"),
            ("purity", "purity"), ("purity_shuffled", "purity, shuffled labels")]
    for i, (col, label) in enumerate(bars):
        axes[1].bar(x + 0.2 * i, table[col], 0.2, label=label, hatch="//" if "shuffled" in col else None)
    axes[1].set_ylabel("share")
    axes[1].set_ylim(0, 1.35)
    axes[1].legend(fontsize=7, ncol=2, loc="upper center")
    for ax, shift in zip(axes, (0, 0.3)):
        ax.set_xticks(x + shift, table.index, rotation=20, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
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
