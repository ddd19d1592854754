"""The alpha axis: retrieval quality against the share of monolingual batches.

alpha is the probability that a training batch is monolingual
(:func:`lib.strategies.mono_share`): the cross strategy is alpha = 0, the mono
strategy alpha = 1, and hybrid runs fill the values between (the paper tunes
alpha and reports it "stable for 0.4-0.6", without numbers). Every arm (the
runs of one strategy and alpha, differing in the training seed) gets its
macro mean per dataset, setting and metric with the seed x question interval
of :func:`lib.stats.seed_question_test`, and is compared with the best arm of
the same row, and with the paper's alpha 0.5, by the study's verdict rule (:func:`lib.stats.compare_verdict`:
inside +-margin is ``equivalent``). The alphas whose gap to the best is not
``worse`` form the *best band*: a single alpha is "the best" only when every
other alpha is ``worse``.

    rows = alpha_axis.alpha_table(profile, metrics, ("xquad_r", "mlqa_r"))
    alpha_axis.best_band(rows)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lib import paper
from lib import paper_tables as tables
from lib import stats as S
from lib.errors import ConfigError

SETTINGS = ("mono", "cross", "multi")
METRICS = {"map": ("ap", True), "rank_distance": ("rank_distance", False)}  # metric -> (column, higher is better)
CENTER = 0.5  # the paper's alpha; every other arm is also compared with it
ALPHA_COLUMNS = ["dataset", "setting", "metric", "alpha", "arm", "n_seeds", "estimate", "low", "high",
                 "best_arm", "vs_best", "vs_best_low", "vs_best_high", "vs_best_p", "vs_best_outcome",
                 "vs_center", "vs_center_low", "vs_center_high", "vs_center_p", "vs_center_outcome", "margin"]


def arms_by_alpha(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per trained arm: ``arm``, ``alpha`` (the share of monolingual batches), ``models``."""
    frame = tables.with_arms(metrics)
    frame = frame[frame["strategy"] != "zero-shot"].dropna(subset=["alpha"])
    rows = [{"arm": arm, "alpha": float(part["alpha"].iloc[0]), "models": sorted(part["model"].unique())}
            for arm, part in frame.groupby("arm")]
    out = pd.DataFrame(rows, columns=["arm", "alpha", "models"])
    if out["alpha"].duplicated().any():
        dup = out[out["alpha"].duplicated(keep=False)]
        raise ConfigError(f"two arms share one share of monolingual batches: {dup[['arm', 'alpha']].values.tolist()}")
    return out.sort_values("alpha").reset_index(drop=True)


RANK_DISTANCE_SETTINGS = ("multi",)  # rank distance is a multilingual-pool measure (notebook 05)


def _versus(name: str, x, ref, cells, items, margin: float, level: float, higher: bool) -> dict:
    """``<name>``, ``_low``, ``_high``, ``_p``, ``_outcome`` of arm ``x`` minus arm ``ref`` (seed matrices);
    ``ref`` None means ``x`` is the reference itself."""
    if ref is None:
        return {name: 0.0, f"{name}_low": 0.0, f"{name}_high": 0.0, f"{name}_p": 1.0, f"{name}_outcome": "reference"}
    t = S.seed_question_test(x, ref, cells, clusters=items)
    outcome = S.compare_verdict(t["point"], t["low"], t["high"], t["p_value"], level=level, margin=margin,
                                higher_is_better=higher)
    return {name: t["point"], f"{name}_low": t["low"], f"{name}_high": t["high"], f"{name}_p": t["p_value"],
            f"{name}_outcome": outcome}


def alpha_table(profile: str, metrics: pd.DataFrame, datasets: Sequence[str], settings: Sequence[str] = SETTINGS,
                metric_names: Sequence[str] = tuple(METRICS), margin: float = 0.01,
                level: float = 0.05) -> pd.DataFrame:
    """Every arm's macro mean with its interval, and its gaps to the best arm of the row and to alpha 0.5
    (ALPHA_COLUMNS). mAP in every setting; rank distance in the multi setting only.

    ``margin`` applies to mAP; rank distance (another scale) uses ``margin``
    times 100, i.e. one rank per 0.01 mAP.
    """
    arms = arms_by_alpha(metrics)
    if arms.empty:
        raise ConfigError("no trained models in metrics: train and evaluate some first (notebooks 03 and 04)")
    center = next((a.arm for a in arms.itertuples() if np.isclose(a.alpha, CENTER)), None)
    cases = [(d, s, m) for d in datasets for s in settings for m in metric_names
             if m == "map" or s in RANK_DISTANCE_SETTINGS]
    rows = []
    for dataset, setting, metric in cases:
        column, higher = METRICS[metric]
        m = margin if metric == "map" else margin * 100
        scores = {a.arm: paper.arm_scores(profile, a.models, dataset, setting, column) for a in arms.itertuples()}
        common = next(iter(scores.values())).index
        for frame in scores.values():
            common = common.intersection(frame.index)
        base = next(iter(scores.values())).loc[common]
        cells, items = base["cell"].to_numpy(), base["item_id"].to_numpy()
        mats = {arm: frame.loc[common, [c for c in frame.columns if str(c).startswith("seed_")]].to_numpy(float).T
                for arm, frame in scores.items()}
        est = {arm: S.seed_question_interval(x, cells, clusters=items) for arm, x in mats.items()}
        best = max(est, key=lambda a: est[a]["point"] if higher else -est[a]["point"])
        for a in arms.itertuples():
            row = {"dataset": dataset, "setting": setting, "metric": metric, "alpha": a.alpha, "arm": a.arm,
                   "n_seeds": mats[a.arm].shape[0], "estimate": est[a.arm]["point"], "low": est[a.arm]["low"],
                   "high": est[a.arm]["high"], "best_arm": best, "margin": m}
            for name, ref in (("vs_best", best), ("vs_center", center)):
                if ref is not None:
                    row.update(_versus(name, mats[a.arm], None if a.arm == ref else mats[ref], cells, items, m,
                                       level, higher))
            rows.append(row)
    return pd.DataFrame(rows, columns=ALPHA_COLUMNS)


def best_band(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, setting, metric): the best alpha, the alphas not worse than it (the band), and
    whether the best is unique (every other alpha ``worse``)."""
    rows = []
    for (dataset, setting, metric), part in table.groupby(["dataset", "setting", "metric"], sort=False):
        band = part.loc[part["vs_best_outcome"] != "worse", "alpha"].sort_values()
        best = part.loc[part["vs_best_outcome"] == "reference", "alpha"].iloc[0]
        rows.append({"dataset": dataset, "setting": setting, "metric": metric, "best_alpha": best,
                     "band": ", ".join(f"{a:g}" for a in band), "unique_best": len(band) == 1,
                     "hybrid_in_band": bool(((band > 0) & (band < 1)).any())})
    return pd.DataFrame(rows)


def answer_lines(table: pd.DataFrame, band: pd.DataFrame, metric: str = "map") -> list[str]:
    """The alpha-axis answer in words, from the table's numbers: per dataset and setting the best alpha
    and the band, then how often a single alpha wins, 0.5 is in the band, and the neighbours of 0.5 are
    equivalent to it."""
    part = table[table["metric"] == metric]
    rows = band[band["metric"] == metric]
    lines = []
    for r in rows.itertuples():
        cell = part[(part["dataset"] == r.dataset) & (part["setting"] == r.setting)].sort_values("alpha")
        best = cell[cell["alpha"] == r.best_alpha].iloc[0]
        around = ", ".join(f"{a:g} {o}" for a, o in zip(cell["alpha"], cell["vs_center_outcome"])
                           if o not in ("reference", None) and isinstance(o, str) and 0 < a < 1)
        lines.append(f"{r.dataset} {r.setting}: best alpha {r.best_alpha:g} ({best.estimate:.3f} "
                     f"[{best.low:.3f}, {best.high:.3f}]); not worse than it: {r.band}"
                     + (f"; against 0.5: {around}" if around else ""))
    n = len(rows)
    centered = part[(part["alpha"] > 0) & (part["alpha"] < 1) & ~np.isclose(part["alpha"], CENTER)]
    in_band = int(sum(CENTER in [float(x) for x in b.split(", ")] for b in rows["band"]))
    text = (f"{metric}: a single best alpha in {int(rows['unique_best'].sum())} of {n} settings; alpha 0.5 is not "
            f"worse than the best in {in_band} of {n}; ")
    if centered.empty:
        text += "no hybrid alpha other than 0.5 was trained, so the curve's flatness around 0.5 is not tested."
    else:
        groups = list(centered.groupby(["dataset", "setting"], sort=False))
        flat = [bool((g["vs_center_outcome"] == "equivalent").all()) for _, g in groups]
        text += (f"every other hybrid alpha is equivalent to 0.5 (within the margin) in {sum(flat)} of "
                 f"{len(flat)}.")
        text += " " + _paper_band(centered, groups, flat)
    lines.append(text)
    return lines


PAPER_BAND = (0.4, 0.6)  # the paper: the tuned alpha is "stable for 0.4-0.6" (no numbers published)


def _paper_band(centered: pd.DataFrame, groups: list, flat: list[bool]) -> str:
    """The paper's "stable for 0.4-0.6" against the trained alphas around 0.5: which of them lie in that band,
    and where the curve is not flat, which neighbour differs and how."""
    lo, hi = PAPER_BAND
    alphas = sorted(float(a) for a in centered["alpha"].unique())
    inside = [a for a in alphas if lo <= a <= hi]
    shown = ", ".join(f"{a:g}" for a in alphas)
    head = (f"The paper's \"stable for {lo:g}-{hi:g}\": " + (
        f"alpha {', '.join(f'{a:g}' for a in inside)} lies in that band; " if inside else
        f"no trained alpha besides 0.5 lies in that band, so it is tested at the wider {shown}; "))
    if all(flat):
        return head + "the curve is flat within the margin there in every setting."
    moved = [f"{d} {s}: " + ", ".join(f"{a:g} {o}" for a, o in zip(g["alpha"], g["vs_center_outcome"])
                                      if o != "equivalent")
             for ((d, s), g), ok in zip(groups, flat) if not ok]
    return head + f"flat within the margin in {sum(flat)} of {len(flat)} settings; not in {'; '.join(moved)}."
