"""Tables and the computed answer of notebook 06 (study question 1), all read from the flat rows of
``results/<profile>/efficiency.csv`` that :func:`lib.efficiency.measure_all` writes.

The file has one set of rows per model. Models that differ only in their
training seed form an *arm* (:func:`lib.paper_tables.arm_label`: ``mono``,
``cross``, ``hybrid``, ``hybrid a=0.25``, ``zero-shot``); two hybrid alphas are
two arms. The tables report per arm the mean over its seeds with the min and
max over seeds and ``n_seeds``, so that a difference between arms can be
judged against the spread between seeds:

- :func:`points` (one row per model and sweep point, values as columns) and
  :func:`arm_points` (one row per arm and sweep point: ``<value>`` = mean
  over seeds, ``<value>_min`` / ``<value>_max`` / ``<value>_std``, ``n_seeds``);
- :func:`pareto_front` / :func:`cheapest_at`: quality-versus-cost fronts and
  the cheapest point reaching a quality;
- ``*_table``: the notebook's tables (:func:`as_text` writes ``mean (min-max)``
  cells); :func:`conclusion`: the answer as markdown, every number read from
  the rows. The figures are in :mod:`lib.efficiency_report`.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lib import metric_registry
from lib import stats as S
from lib.efficiency import OVERLAP, identified
from lib.indexes import FAMILIES
from lib.models import ZERO_SHOT
from lib.paper_tables import arm_label
from lib.plots import ordered, strategy_of

KEYS = ["model", "strategy", "dataset", "index", "param"]
SPREAD = ("min", "max", "std")  # suffixes of the seed spread beside each mean
CLUSTERING = ("silhouette", "cells_dom50", "cells_dom80", "purity", "purity_shuffled", "cell_entropy",
              "cell_entropy_shuffled", "nlist")


# --------------------------------------------------------------------------
# Models, arms and points


def with_arms(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``alpha``, ``seed`` (from the names for old files) and ``arm`` columns."""
    rows = identified(rows)
    keys = list(zip(rows["strategy"], rows["alpha"].fillna(-1.0)))  # NaN (zero-shot) as a usable key
    labels = {(s, a): arm_label(s, np.nan if a == -1.0 else a) for s, a in set(keys)}
    return rows.assign(arm=[labels[k] for k in keys])


def models(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model (``model, strategy, alpha, seed, arm``) in display order: arm, seed, name."""
    ident = with_arms(rows)[["model", "strategy", "alpha", "seed", "arm"]].drop_duplicates("model")
    rank = {a: i for i, a in enumerate(ordered(ident["arm"]))}
    ident = ident.assign(rank=ident["arm"].map(rank)).sort_values(["rank", "seed", "model"], kind="stable")
    return ident.drop(columns="rank").reset_index(drop=True)


def arm_order(rows: pd.DataFrame) -> list[str]:
    """The arms of ``rows`` in the registry's display order (zero-shot, mono, cross, hybrid, hybrid a=...)."""
    return list(dict.fromkeys(models(rows)["arm"]))


def _param_key(param: str) -> tuple:
    """Sort key of a ``param`` text: its numbers in order ("nlist=431,nprobe=16" -> (431, 16))."""
    nums = tuple(float(x) for x in re.findall(r"=(\d+(?:\.\d+)?)", param))
    return nums or (0.0,)


def _sweep_rows(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    return rows[(rows["dataset"] == dataset) & rows["index"].isin(FAMILIES)
                & ~rows["value_name"].str.startswith(("e2e_", "query_encode_"))]


def _point_order(frame: pd.DataFrame, first: str, order: Sequence[str]) -> pd.DataFrame:
    """``frame`` ordered by ``first`` (in ``order``), index family and the numbers of ``param``."""
    rank = {x: i for i, x in enumerate(order)}
    key = [(rank[a], FAMILIES.index(f), _param_key(p)) for a, f, p in zip(frame[first], frame["index"], frame["param"])]
    return frame.iloc[sorted(range(len(key)), key=key.__getitem__)].reset_index(drop=True)


def wide(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, strategy, dataset, index, param), one column per value_name."""
    out = rows.pivot_table(index=KEYS, columns="value_name", values="value", aggfunc="first")
    return out.reset_index().rename_axis(columns=None)


def points(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The sweep points of one dataset, one row per (model, index, param) with its ``arm`` and ``seed``,
    values as columns; ordered by model (display order), index family and the numbers of ``param``."""
    sub = _sweep_rows(rows, dataset)
    if sub.empty:
        return pd.DataFrame(columns=[*KEYS, "arm", "seed"])
    ident = models(rows).set_index("model")
    pts = wide(sub).assign(arm=lambda f: f["model"].map(ident["arm"]), seed=lambda f: f["model"].map(ident["seed"]))
    return _point_order(pts, "model", list(ident.index))


def _spread_wide(long: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Long rows (``by``, ``arm``, ``model``, ``value_name``, ``value``) -> one row per ``by`` group with
    ``<value>`` (mean over the seeds), ``<value>_min`` / ``_max`` / ``_std`` and ``n_seeds`` (models)."""
    by = list(by)
    spread = S.seed_spread(long, [*by, "value_name"], value="value", seed="model")
    table = spread.pivot(index=by, columns="value_name", values=["mean", *SPREAD])
    out = table["mean"].copy()
    for suffix in SPREAD:
        out = out.join(table[suffix].add_suffix(f"_{suffix}"))
    n_seeds = long.groupby(by, sort=False)["model"].nunique()
    out.insert(0, "n_seeds", n_seeds.reindex(out.index).astype(int))
    return out.rename_axis(columns=None).reset_index()


def arm_points(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The sweep points of one dataset per arm: one row per (arm, index, param); every value is the mean
    over the arm's seeds, beside its ``_min``, ``_max``, ``_std`` over seeds, and ``n_seeds``."""
    sub = _sweep_rows(rows, dataset)
    if sub.empty:
        return pd.DataFrame(columns=["arm", "index", "param", "n_seeds"])
    return _point_order(_spread_wide(with_arms(sub), ["arm", "index", "param"]), "arm", arm_order(rows))


def pareto_front(points: pd.DataFrame, cost: str, quality: str) -> pd.DataFrame:
    """The points no other point beats on both axes (lower ``cost``, higher ``quality``), by cost."""
    pts = points.dropna(subset=[cost, quality]).sort_values([cost, quality], ascending=[True, False])
    best, keep = -np.inf, []
    for idx, q in zip(pts.index, pts[quality]):
        if q > best:
            keep.append(idx)
            best = q
    return pts.loc[keep]


def cheapest_at(points: pd.DataFrame, quality: str, threshold: float, cost: str, by: str = "model") -> pd.DataFrame:
    """Per ``by`` (model or arm), the cheapest point (by ``cost``) whose ``quality`` reaches ``threshold``."""
    ok = points[points[quality] >= threshold].sort_values(cost, kind="stable")
    return ok.groupby(by, sort=False).head(1).set_index(by)


# --------------------------------------------------------------------------
# Tables


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def as_text(table: pd.DataFrame) -> pd.DataFrame:
    """A table of means with ``_min`` / ``_max`` columns (and ``n_seeds``) as ``mean (min-max)`` text cells
    (the mean alone for one seed); the spread columns are folded in."""
    out = pd.DataFrame(index=table.index)
    for col in table.columns:
        if any(str(col).endswith(f"_{s}") and str(col)[:-len(s) - 1] in table for s in SPREAD):
            continue
        if f"{col}_min" in table and f"{col}_max" in table:
            several = table["n_seeds"] > 1 if "n_seeds" in table else True
            out[col] = [_fmt(m) + (f" ({_fmt(lo)}-{_fmt(hi)})" if many and np.isfinite(lo) else "")
                        for m, lo, hi, many in zip(table[col], table[f"{col}_min"], table[f"{col}_max"],
                                                   np.broadcast_to(several, len(table)))]
        else:
            out[col] = table[col]
    return out


def encoding_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model (with its arm): encoding throughput (median, p5, p95 over repeats) and peak memory for
    each precision, parameter count, and single-query encoding / end-to-end latency."""
    enc = rows[rows["index"] == "encoder"].copy()
    enc["precision"] = enc["param"].str.extract(r"precision=(\w+)", expand=False)
    table = enc.pivot_table(index="model", columns=["precision", "value_name"], values="value", sort=False)
    ident = models(rows).set_index("model")
    out = pd.DataFrame({"arm": ident["arm"]}, index=[m for m in ident.index if m in table.index])
    for p in dict.fromkeys(enc["precision"]):
        for col, name in ((f"{p} texts/s", "texts_per_s_p50"), (f"{p} texts/s p5", "texts_per_s_p5"),
                          (f"{p} texts/s p95", "texts_per_s_p95"), (f"{p} peak MiB", "peak_rss_mib"),
                          (f"{p} cosine vs fp32", "cosine_vs_fp32")):
            if (p, name) in table:
                out[col] = table[(p, name)]
    out["params (M)"] = table.xs("n_params", axis=1, level=1).iloc[:, 0] / 1e6
    e2e = rows[rows["value_name"].isin(["query_encode_ms_p50", "e2e_latency_ms_p50"])]
    e2e = e2e.pivot_table(index="model", columns="value_name", values="value")
    for name, label in (("query_encode_ms_p50", "query encode ms"), ("e2e_latency_ms_p50", "end-to-end ms")):
        if name in e2e:
            out[label] = e2e[name]
    return out.rename_axis("model")


def _arm_values(rows: pd.DataFrame, by: Sequence[str], keep: Sequence[str]) -> pd.DataFrame:
    """Rows whose value_name is in ``keep`` -> per ``by`` + arm: means over seeds with their spread."""
    sub = with_arms(rows[rows["value_name"].isin(keep)])
    if sub.empty:
        return pd.DataFrame()
    table = _spread_wide(sub, [*by, "arm"])
    rank = {a: i for i, a in enumerate(arm_order(rows))}
    table = table.sort_values([*by, "arm"], key=lambda c: c.map(rank) if c.name == "arm" else c, kind="stable")
    cols = [c for v in keep for c in (v, *(f"{v}_{s}" for s in SPREAD)) if c in table]
    return table.set_index([*by, "arm"])[["n_seeds", *cols]]


def exact_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and arm: the exact index's labelled metrics, latency and throughput (mean over seeds,
    with min / max / std over seeds and n_seeds)."""
    ex = rows[rows["index"] == "exact"]
    keep = [*metric_registry.family("dureader"), *metric_registry.family("pool"), "latency_ms_p50", "batch_qps_p50",
            "bytes_per_vector"]
    return _arm_values(ex, ["dataset"], list(dict.fromkeys(keep)))


def knob_table(rows: pd.DataFrame, dataset: str, value: str = OVERLAP, text: bool = False) -> pd.DataFrame:
    """``value`` at every sweep point (rows: index, param) for every arm (columns): the mean over seeds,
    or with ``text`` ``mean (min-max)`` over seeds."""
    pts = arm_points(rows, dataset)
    if value not in pts:
        return pd.DataFrame()
    if text:
        pts = pts.assign(**{value: as_text(pts[["n_seeds", value, f"{value}_min", f"{value}_max"]])[value]})
    table = pts.pivot(index=["index", "param"], columns="arm", values=value)
    table = table.loc[list(dict.fromkeys(zip(pts["index"], pts["param"])))]
    return table[[a for a in arm_order(rows) if a in table.columns]].rename_axis(columns=None)


def cheapest_table(rows: pd.DataFrame, dataset: str, thresholds: Sequence[float] = (0.9, 0.95, 0.99),
                   cost: str = "latency_ms_p50", quality: str = OVERLAP) -> pd.DataFrame:
    """Per arm and threshold: the cheapest approximate point (by the mean ``cost`` over seeds) whose mean
    ``quality`` over seeds reaches the threshold; its cost and quality with min / max over seeds, and how
    many of the arm's seeds reach the threshold there."""
    pts = arm_points(rows, dataset)
    pts = pts[pts["index"] != "exact"]
    per_model = points(rows, dataset).set_index(["arm", "index", "param"])
    out = []
    for t in thresholds:
        best = cheapest_at(pts, quality, t, cost, by="arm")
        for arm, n in zip(pts["arm"].drop_duplicates(), pts.drop_duplicates("arm")["n_seeds"]):
            row = {"arm": arm, f"{quality} >=": t, "n_seeds": n, "index": "none", "param": ""}
            if arm in best.index:
                b = best.loc[arm]
                seeds = np.atleast_1d(per_model.loc[(arm, b["index"], b["param"]), quality])
                row.update({"index": b["index"], "param": b["param"], "seeds reaching": int((seeds >= t).sum()),
                            **{c: b[c] for v in (cost, quality, "bytes_per_vector")
                               for c in (v, f"{v}_min", f"{v}_max")}})
            out.append(row)
    table = pd.DataFrame(out)
    if "seeds reaching" in table:
        table["seeds reaching"] = table["seeds reaching"].astype("Int64")
    return table.set_index(["arm", f"{quality} >="])


def clustering_table(rows: pd.DataFrame, dataset: str = "xquad_r", n_probes: int = 3) -> pd.DataFrame:
    """Per arm: the language-clustering statistics of the pool (mean over seeds with min / max / std),
    beside IVF's overlap@10 there at the ``n_probes`` smallest nprobe values."""
    cl = rows[(rows["dataset"] == dataset) & (rows["index"] == "clustering")]
    table = _arm_values(cl, [], CLUSTERING)
    if table.empty:
        return table
    table.index = table.index.get_level_values("arm")
    pts = arm_points(rows, dataset)
    ivf = pts[pts["index"] == "ivf"]
    for param in list(dict.fromkeys(ivf["param"]))[:n_probes]:
        at = ivf[ivf["param"] == param].set_index("arm")
        name = f"IVF overlap {param.split(',')[-1]}"
        for s in ("", *(f"_{x}" for x in SPREAD)):
            table[name + s] = at[OVERLAP + s].reindex(table.index)
    return table


def stage_seconds(rows: pd.DataFrame) -> pd.DataFrame:
    """Seconds per stage (load, encoding cost, embedding, sweep...) per model and dataset."""
    facts = rows[(rows["index"] == "facts") & rows["value_name"].str.endswith("_s")]
    return facts.pivot_table(index=["model", "dataset"], columns="value_name", values="value",
                             sort=False).rename_axis(columns=None)


# --------------------------------------------------------------------------
# Arms compared at identical index settings


def arm_pairs(arms: Sequence[str]) -> list[tuple[str, str]]:
    """(a, b) pairs compared as ``a - b``: every trained arm minus every trained arm before it in display
    order (``hybrid - mono``, ``hybrid a=0.25 - hybrid``...), then every trained arm minus zero-shot."""
    trained = [a for a in ordered(arms) if a != ZERO_SHOT]
    pairs = [(a, b) for i, a in enumerate(trained) for b in trained[:i]]
    return pairs + [(a, ZERO_SHOT) for a in trained if ZERO_SHOT in arms]


def point_differences(rows: pd.DataFrame, dataset: str, a: str, b: str, level: float = 0.95) -> pd.DataFrame:
    """overlap@10 of arm ``a`` minus arm ``b`` (means over seeds) at every approximate point.

    Two noises, each with its half-width: the seeds' (``seed_hw``: Welch's
    ``level`` interval over the seeds of both arms; NaN when a trained arm
    has one seed; zero-shot has no training seed and counts as exact) and
    the queries' (``query_hw``: two standard errors over the queries, the
    arms' mean SE combined). ``beyond_noise``: the difference is larger
    than both.
    """
    pts = arm_points(rows, dataset)
    pts = pts[pts["index"] != "exact"].set_index(["index", "param", "arm"])
    cols = ["diff", "seed_hw", "query_hw", "beyond_noise"]
    if pts.empty or a not in pts.index.get_level_values("arm") or b not in pts.index.get_level_values("arm"):
        return pd.DataFrame(columns=cols)
    va, vb = pts.xs(a, level="arm"), pts.xs(b, level="arm")
    common = va.index.intersection(vb.index)
    va, vb = va.loc[common], vb.loc[common]
    diff = va[OVERLAP] - vb[OVERLAP]
    terms = []
    for arm, v in ((a, va), (b, vb)):
        n = v["n_seeds"].astype(float)
        var = v[f"{OVERLAP}_std"].fillna(0.0) ** 2 / n if arm == ZERO_SHOT else v[f"{OVERLAP}_std"] ** 2 / n
        terms.append((var, n - 1 if arm != ZERO_SHOT else np.inf))
    total = terms[0][0] + terms[1][0]
    with np.errstate(divide="ignore", invalid="ignore"):
        df = total ** 2 / sum(v ** 2 / d for v, d in terms)
    df = df.where(np.isfinite(df) & (df > 0), np.minimum(terms[0][1], terms[1][1]))  # no spread: the seeds' df
    seed_hw = sps.t.ppf(0.5 + level / 2, df) * np.sqrt(total)
    query_hw = 2 * np.sqrt(va[f"{OVERLAP}_se"] ** 2 + vb[f"{OVERLAP}_se"] ** 2)
    beyond = (diff.abs() > query_hw) & (diff.abs() > seed_hw.fillna(-np.inf))
    return pd.DataFrame({"diff": diff, "seed_hw": seed_hw, "query_hw": query_hw, "beyond_noise": beyond})


def difference_table(rows: pd.DataFrame, datasets: Sequence[str]) -> pd.DataFrame:
    """Per pair of arms (:func:`arm_pairs`) and dataset: the mean and largest difference in overlap@10 at
    identical index settings, the median half-widths of the seed noise and of the query noise, and how
    many points differ by more than both (``noise``: what the verdict could weigh)."""
    seeds = models(rows).groupby("arm")["model"].nunique()
    out = []
    for a, b in arm_pairs(list(seeds.index)):
        for dataset in datasets:
            diff = point_differences(rows, dataset, a, b)
            if diff.empty:
                continue
            worst = diff["diff"].abs().idxmax()
            out.append({"pair": f"{a} - {b}", "dataset": dataset, "seeds": f"{seeds[a]} vs {seeds[b]}",
                        "points": len(diff), "mean diff": diff["diff"].mean(), "largest diff": diff.loc[worst, "diff"],
                        "at": f"{worst[0]} {worst[1]}", "seed ± (median)": diff["seed_hw"].median(),
                        "query ± (median)": diff["query_hw"].median(), "beyond noise": int(diff["beyond_noise"].sum()),
                        "noise": "seeds and queries" if diff["seed_hw"].notna().all() else "queries only (1 seed)"})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------
# Conclusion


def _seeds(arm: str, n: int) -> str:
    return "1 model" if arm == ZERO_SHOT else f"{n} seed{'s' if n != 1 else ''}"


def _range(table: pd.DataFrame, col: str, arm, fmt: str = ".3f") -> str:
    """``mean`` or ``mean (min-max, n seeds)`` of one arm's row."""
    r = table.loc[arm]
    if r["n_seeds"] > 1:
        return f"{r[col]:{fmt}} ({r[f'{col}_min']:{fmt}}-{r[f'{col}_max']:{fmt}})"
    return f"{r[col]:{fmt}}"


def _encoding_lines(rows: pd.DataFrame) -> list[str]:
    enc = encoding_table(rows)
    prec = "bf16" if "bf16 texts/s" in enc else "fp32"
    tps = enc[f"{prec} texts/s"]
    within = ((enc[f"{prec} texts/s p95"] - enc[f"{prec} texts/s p5"]) / tps).median()
    lines = [f"- **Encoding cost** ({prec}, {len(enc)} models of {enc['arm'].nunique()} arms): every model has "
             f"{enc['params (M)'].iloc[0]:.1f}M parameters "
             f"({'identical' if enc['params (M)'].nunique() == 1 else 'NOT identical'} counts); "
             f"throughput {tps.min():.1f}-{tps.max():.1f} passages/s, a spread across models of "
             f"{(tps.max() - tps.min()) / tps.median():.0%} against {within:.0%} (p5-p95) between repeats of "
             f"one model; peak memory {enc[f'{prec} peak MiB'].min():.0f}-{enc[f'{prec} peak MiB'].max():.0f} MiB."]
    if prec == "bf16" and "fp32 texts/s" in enc:
        lines.append(f"- bf16 encodes {(enc['bf16 texts/s'] / enc['fp32 texts/s']).median():.2f}x as fast as fp32 "
                     f"(median over models); bf16 embeddings are at cosine >= {enc['bf16 cosine vs fp32'].min():.4f} "
                     "to the fp32 ones.")
    if "end-to-end ms" in enc:
        lines.append(f"- One question end to end (encode + exact search): {enc['end-to-end ms'].median():.1f} ms "
                     f"median over models, of which encoding {enc['query encode ms'].median():.1f} ms.")
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
        per_arm = e2e.groupby("arm")["end_to_end_ms_p50"].median().reindex(arm_order(rows)).dropna()
        lines.append(f"- **End to end on {dataset}** (one question encoded and searched, p50): "
                     f"{approx.min():.1f}-{approx.max():.1f} ms over the approximate points, "
                     f"{exact.min():.1f}-{exact.max():.1f} ms with exact search; median per arm (over its points "
                     "and seeds) " + ", ".join(f"{a} {v:.1f}" for a, v in per_arm.items()) + " ms.")
    return lines


def _difference_lines(rows: pd.DataFrame, datasets: Sequence[str]) -> list[str]:
    diffs = difference_table(rows, datasets)
    main = diffs[[strategy_of(p.split(" - ")[0]) == "hybrid" and p.split(" - ")[1] in ("mono", "cross")
                  for p in diffs["pair"]]] if len(diffs) else diffs
    lines = []
    for r in main.to_dict("records"):
        noise = (f"seed noise ±{r['seed ± (median)']:.3f}, query noise ±{r['query ± (median)']:.3f} (medians)"
                 if r["noise"] == "seeds and queries" else
                 f"one seed per arm, so only the query noise ±{r['query ± (median)']:.3f} (median) is known")
        verdict = ("no point differs beyond the noise" if r["beyond noise"] == 0 else
                   f"{r['beyond noise']} of {r['points']} points differ beyond the noise")
        lines.append(f"- **{r['pair']} on {r['dataset']}** ({r['seeds']} seeds): at identical index settings "
                     f"overlap@10 differs by {r['mean diff']:+.3f} on average (largest {r['largest diff']:+.3f}, "
                     f"{r['at']}); {noise}; {verdict}.")
    if main.empty:
        have = [a for a in arm_order(rows) if a != ZERO_SHOT]
        lines.append(f"- **Strategies**: trained arms found: {', '.join(have) or 'none'}; hybrid vs mono / cross "
                     "needs a hybrid run and at least one of the others (train them with notebook 03 and rerun).")
    return lines


def conclusion(rows: pd.DataFrame, dureader: str, xquad: str = "xquad_r") -> str:
    """The answer to question 1 as markdown bullet points, per arm (mean over seeds, min-max over seeds in
    brackets), every number read from ``rows``."""
    lines = _encoding_lines(rows)
    ex = exact_table(rows)
    if len(ex) and dureader in ex.index.get_level_values(0):
        d = ex.loc[dureader]
        lines.append(f"- **Exact search on {dureader}** (mean over seeds, min-max): " + "; ".join(
            f"{a} ({_seeds(a, d.loc[a, 'n_seeds'])}) nDCG@10 {_range(d, 'ndcg_at_10', a)}, MRR@10 "
            f"{_range(d, 'mrr_at_10', a)}, R@50 {_range(d, 'recall_at_50', a)}" for a in d.index)
            + f"; a flat scan costs {d['latency_ms_p50'].median():.2f} ms per question.")
    datasets = list(dict.fromkeys((dureader, xquad)))
    for dataset in datasets:
        cheap = cheapest_table(rows, dataset, thresholds=(0.95,))
        if len(cheap):
            lines.append(f"- **Cheapest index keeping 95% of the exact top-10 on {dataset}** (by the arm's mean): "
                         + "; ".join(f"{a}: none" if r["index"] == "none" else
                                     f"{a}: {r['index']} {r['param']} ({r['latency_ms_p50']:.3f} ms, "
                                     f"{r['bytes_per_vector']:.0f} B/vector; {r['seeds reaching']} of "
                                     f"{r['n_seeds']} seeds reach 0.95 there)"
                                     for (a, _), r in cheap.iterrows()) + ".")
    lines += _end_to_end_lines(rows, datasets)
    lines += _difference_lines(rows, datasets)
    cl = clustering_table(rows, xquad)
    if len(cl):
        lines.append(f"- **Language clustering on {xquad}** (mean over seeds, min-max): " + "; ".join(
            f"{a} silhouette {_range(cl, 'silhouette', a, '.2f')}, {cl.loc[a, 'cells_dom50']:.0%} of IVF cells "
            f"> 50% one language" for a in cl.index)
            + f" (with shuffled labels the purity is {cl['purity_shuffled'].mean():.2f}).")
    return "\n".join(lines)
