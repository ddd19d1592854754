"""Paired tests, bootstrap intervals, seed spread and verdicts for comparing models.

The unit of comparison is a per-question score (AP, rank distance) of two
models on the same questions. Questions of one LAReQA item are translations
of each other, so their scores are correlated; every function accepts
``clusters`` (the item id) so that resampling and sign flips move whole
items, and ``groups`` (e.g. the query language) so that the statistic is
the paper's macro mean: the mean over groups of the per-group means.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lib.errors import ConfigError, DataError


def align(a: pd.Series, b: pd.Series, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Pair two per-question series by index; refuse different or duplicated question sets."""
    for s, n in ((a, names[0]), (b, names[1])):
        if s.index.has_duplicates:
            raise DataError(f"{n}: question index has duplicates, e.g. {s.index[s.index.duplicated()][0]!r}; "
                            "index per-question scores by a unique key")
    only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
    if len(only_a) or len(only_b):
        example = (list(only_a[:1]) + list(only_b[:1]))[0]
        raise DataError(f"paired comparison needs the same questions: {len(only_a)} only in {names[0]}, "
                        f"{len(only_b)} only in {names[1]} (e.g. {example!r}); evaluate both models on the same "
                        "data (same max_items)")
    return pd.DataFrame({"a": a, "b": b.reindex(a.index)})


def _codes(labels, n: int, what: str) -> tuple[np.ndarray, int]:
    if labels is None:
        return np.zeros(n, dtype=np.int64), 1
    labels = np.asarray(labels)
    if len(labels) != n:
        raise ConfigError(f"{what}: {len(labels)} labels for {n} values")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), len(uniques)


def _cluster_codes(clusters, n: int) -> tuple[np.ndarray, int]:
    """Each value its own cluster when ``clusters`` is None."""
    if clusters is None:
        return np.arange(n, dtype=np.int64), n
    return _codes(clusters, n, "clusters")


def macro_weights(groups, n: int) -> np.ndarray:
    """Weights w with sum(w * x) = mean over groups of the group means of x."""
    g, n_groups = _codes(groups, n, "groups")
    sizes = np.bincount(g, minlength=n_groups)
    return 1.0 / (n_groups * sizes[g])


def macro_mean(values, groups=None) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.sum(macro_weights(groups, len(values)) * values)) if len(values) else float("nan")


def _check_values(*arrays: np.ndarray) -> None:
    for x in arrays:
        if len(x) == 0:
            raise DataError("no values to compare")
        if not np.all(np.isfinite(x)):
            raise DataError("values contain NaN or inf; drop undefined questions before testing")


def paired_randomization_test(a, b, groups=None, clusters=None, n_permutations: int = 10_000,
                              seed: int = 0) -> dict:
    """Two-sided sign-flip test of macro-mean(a - b) = 0 for paired scores.

    Under the null the two models are exchangeable on each cluster (item),
    so the sign of each cluster's contribution to the statistic is flipped
    at random. p = (1 + #(|flipped| >= |observed|)) / (1 + n_permutations).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise DataError(f"paired test: a has {a.shape} values, b has {b.shape}")
    _check_values(a, b)
    contrib = macro_weights(groups, len(a)) * (a - b)
    c, n_clusters = _cluster_codes(clusters, len(a))
    per_cluster = np.bincount(c, weights=contrib, minlength=n_clusters)
    observed = float(per_cluster.sum())
    rng = np.random.default_rng(seed)
    extreme, done, step = 0, 0, max(1, 4_000_000 // max(1, n_clusters))
    while done < n_permutations:
        m = min(step, n_permutations - done)
        signs = rng.integers(0, 2, size=(m, n_clusters), dtype=np.int8) * 2 - 1
        flipped = signs @ per_cluster
        extreme += int(np.sum(np.abs(flipped) >= abs(observed) - 1e-12))
        done += m
    return {"statistic": observed, "p_value": (1 + extreme) / (1 + n_permutations), "n": len(a),
            "n_clusters": n_clusters, "n_permutations": n_permutations}


def paired_t_test(a, b, clusters=None) -> dict:
    """Paired t-test of mean(a - b) = 0, on per-cluster mean differences when ``clusters`` is given."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise DataError(f"paired t-test: a has {a.shape} values, b has {b.shape}")
    _check_values(a, b)
    c, n_clusters = _cluster_codes(clusters, len(a))
    d = np.bincount(c, weights=a - b, minlength=n_clusters) / np.bincount(c, minlength=n_clusters)
    if len(d) < 2:
        raise DataError("paired t-test needs at least two questions (clusters)")
    if np.allclose(d, d[0]):
        p = 1.0 if d[0] == 0 else 0.0
        return {"statistic": float(d.mean()), "t": float("nan") if d[0] == 0 else float(np.sign(d[0]) * np.inf),
                "p_value": p, "df": len(d) - 1}
    res = sps.ttest_1samp(d, 0.0)
    return {"statistic": float(d.mean()), "t": float(res.statistic), "p_value": float(res.pvalue), "df": len(d) - 1}


def bootstrap_ci(values, groups=None, clusters=None, n_bootstrap: int = 2000, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Percentile bootstrap interval of the macro mean of ``values``.

    With ``clusters``, whole clusters (items) are resampled; otherwise the
    values are resampled within each group (question language), keeping the
    group sizes.
    """
    values = np.asarray(values, dtype=float)
    _check_values(values)
    if not 0 < level < 1:
        raise ConfigError(f"level={level} must be between 0 and 1")
    g, n_groups = _codes(groups, len(values), "groups")
    rng = np.random.default_rng(seed)
    if clusters is not None:
        c, n_clusters = _cluster_codes(clusters, len(values))
        sums = np.zeros((n_clusters, n_groups))
        counts = np.zeros((n_clusters, n_groups))
        np.add.at(sums, (c, g), values)
        np.add.at(counts, (c, g), 1.0)
        draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_bootstrap)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (draws @ sums) / (draws @ counts)
        reps = np.nanmean(means, axis=1)
    else:
        reps = np.zeros(n_bootstrap)
        for k in range(n_groups):
            x = values[g == k]
            draws = rng.multinomial(len(x), np.full(len(x), 1.0 / len(x)), size=n_bootstrap)
            reps += (draws @ x) / len(x) / n_groups
    tail = (1 - level) / 2
    low, high = np.quantile(reps, [tail, 1 - tail])
    return {"point": macro_mean(values, groups), "low": float(low), "high": float(high), "level": level,
            "n_bootstrap": n_bootstrap}


def seed_spread(frame: pd.DataFrame, by: Sequence[str], value: str = "value", seed: str = "seed") -> pd.DataFrame:
    """Mean, std (ddof 1), min, max and count over the seeds of each ``by`` group."""
    missing = [c for c in [*by, value, seed] if c not in frame.columns]
    if missing:
        raise ConfigError(f"seed_spread: columns {missing} missing; have {list(frame.columns)}")
    out = frame.groupby(list(by), dropna=False)[value].agg(["mean", "std", "min", "max", "count"])
    return out.rename(columns={"count": "n_seeds"}).reset_index()


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def compare_verdict(diff: float, low: float, high: float, p_value: float, alpha: float = 0.05,
                    margin: float = 0.0, higher_is_better: bool = True) -> str:
    """``better`` / ``worse`` (significant at ``alpha`` with the interval excluding 0),
    ``equivalent`` (the interval inside +-``margin``) or ``inconclusive``."""
    gain_low, gain_high = (low, high) if higher_is_better else (-high, -low)  # interval of the improvement
    if p_value < alpha and gain_low > 0:
        return "better"
    if p_value < alpha and gain_high < 0:
        return "worse"
    if margin > 0 and low > -margin and high < margin:
        return "equivalent"
    return "inconclusive"


def claim_verdict(outcomes: Sequence[str], accept: Sequence[str] = ("better", "equivalent")) -> str:
    """A claim over several comparisons: ``supported`` if all are in ``accept``,
    ``not supported`` if any is ``worse``, else ``inconclusive``."""
    outcomes = list(outcomes)
    if not outcomes:
        return "inconclusive"
    if all(o in accept for o in outcomes):
        return "supported"
    if any(o == "worse" for o in outcomes):
        return "not supported"
    return "inconclusive"
