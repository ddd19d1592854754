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


def compare_verdict(diff: float, low: float, high: float, p_value: float, level: float = 0.05,
                    margin: float = 0.0, higher_is_better: bool = True) -> str:
    """The study's one verdict rule for a difference ``a - b`` with interval ``[low, high]``.

    In this order:

    1. ``equivalent``: the interval lies inside ``(-margin, +margin)``, whether
       or not the difference is significant (a gap too small to matter,
       measured precisely, is a tie; ``margin`` is declared before the run);
    2. ``better`` / ``worse``: significant (``p_value < level``) and the
       interval excludes 0 on the side of an improvement / a loss;
    3. ``inconclusive``: anything else (the interval reaches beyond the
       margin and includes 0, or the test is not significant).

    ``level`` is the significance level (not the hybrid mixing share alpha).
    """
    if margin > 0 and low > -margin and high < margin:
        return "equivalent"
    gain_low, gain_high = (low, high) if higher_is_better else (-high, -low)  # interval of the improvement
    if p_value < level and gain_low > 0:
        return "better"
    if p_value < level and gain_high < 0:
        return "worse"
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


# --------------------------------------------------------------------------
# Seed-aware comparison of two training strategies
#
# The unit of evidence is (training seed, question): each strategy is a
# distribution over training runs, and each run is scored on the same
# questions. A difference between strategies is uncertain because of both
# the seeds (another seed gives another model) and the questions (another
# test set gives other scores). ``seed_question_bootstrap`` resamples both
# stages: seeds within each strategy, then whole items shared by the two
# strategies (paired), and reports the percentile interval, a two-sided
# bootstrap p-value and the standard error of the macro difference.


def _seed_matrix(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1:
        raise DataError(f"{what}: expected per-seed scores of shape (n_seeds, n_questions), got {x.shape}")
    _check_values(x.ravel())
    return x


def _seed_pair(a, b, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Both strategies' per-seed score matrices, checked: same questions, a level in (0, 1)."""
    a, b = _seed_matrix(a, "strategy A"), _seed_matrix(b, "strategy B")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"paired comparison needs the same questions: A has {a.shape[1]}, B has {b.shape[1]}")
    if not 0 < level < 1:
        raise ConfigError(f"level={level} must be between 0 and 1")
    return a, b


def _cell_sums(x: np.ndarray, c: np.ndarray, n_clusters: int, g: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_seeds, n_clusters, n_groups) sums of each seed's scores per item and group."""
    out = np.zeros((x.shape[0], n_clusters, n_groups))
    for s in range(x.shape[0]):
        np.add.at(out[s], (c, g), x[s])
    return out


def seed_question_bootstrap(a, b, groups=None, clusters=None, n_bootstrap: int = 2000, level: float = 0.95,
                            seed: int = 0, chunk: int = 100) -> dict:
    """Two-stage bootstrap of macro-mean(strategy A) - macro-mean(strategy B).

    ``a`` is (n_seeds_a, n_questions): the per-question scores of each of A's
    training seeds; ``b`` likewise for B, on the same questions in the same
    order (columns). Each replicate draws A's seeds and B's seeds with
    replacement (stage 1), then whole clusters (items) with replacement,
    the same clusters for both strategies (stage 2, paired), and computes the
    macro mean over ``groups`` of the difference of seed-averaged scores.
    Returns the point estimate, the percentile interval, the bootstrap
    standard error and a two-sided p-value (twice the smaller tail share of
    replicates at or beyond 0, floored at 1 / (n_bootstrap + 1)).
    """
    a, b = _seed_pair(a, b, level)
    n = a.shape[1]
    g, n_groups = _codes(groups, n, "groups")
    c, n_clusters = _cluster_codes(clusters, n)
    sa, sb = _cell_sums(a, c, n_clusters, g, n_groups), _cell_sums(b, c, n_clusters, g, n_groups)
    counts = np.zeros((n_clusters, n_groups))
    np.add.at(counts, (c, g), 1.0)
    point = macro_mean(a.mean(0) - b.mean(0), groups)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_bootstrap)
    na, nb = a.shape[0], b.shape[0]
    for start in range(0, n_bootstrap, chunk):
        m = min(chunk, n_bootstrap - start)
        wa = rng.multinomial(na, np.full(na, 1.0 / na), size=m) / na
        wb = rng.multinomial(nb, np.full(nb, 1.0 / nb), size=m) / nb
        draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=m).astype(float)
        diff = np.einsum("rs,scg->rcg", wa, sa) - np.einsum("rs,scg->rcg", wb, sb)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.einsum("rc,rcg->rg", draws, diff) / (draws @ counts)
        reps[start:start + m] = np.nanmean(means, axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(reps, [tail, 1 - tail])
    p = 2 * min(np.mean(reps <= 0), np.mean(reps >= 0))
    return {"point": point, "low": float(low), "high": float(high), "se": float(np.std(reps, ddof=1)),
            "p_value": float(min(1.0, max(p, 1.0 / (n_bootstrap + 1)))), "level": level,
            "n_bootstrap": n_bootstrap, "n_seeds_a": na, "n_seeds_b": nb, "n_clusters": n_clusters}


def seed_question_test(a, b, groups=None, clusters=None, level: float = 0.95) -> dict:
    """Random-effects interval and t-test for macro-mean(A) - macro-mean(B) over seeds and questions.

    ``a`` / ``b`` as in :func:`seed_question_bootstrap`. The variance of the
    difference has two parts: the questions (a cluster-robust variance of the
    macro difference of seed-averaged scores, items as clusters) and the
    seeds (the variance of each strategy's per-seed macro means over its
    seeds, divided by the number of seeds). The interval is
    ``diff +- t(df) * se`` with Welch-Satterthwaite degrees of freedom, so
    that with few seeds (whose variance is itself uncertain) it widens as a
    t interval should; a strategy with one seed contributes no seed variance
    (``seed_variance_known`` is then False).
    """
    a, b = _seed_pair(a, b, level)
    n = a.shape[1]
    w = macro_weights(groups, n)
    g, n_groups = _codes(groups, n, "groups")
    c, n_clusters = _cluster_codes(clusters, n)
    d = a.mean(0) - b.mean(0)
    point = float(np.sum(w * d))
    group_mean = np.bincount(g, weights=w * d, minlength=n_groups) / np.bincount(g, weights=w, minlength=n_groups)
    per_cluster = np.bincount(c, weights=w * (d - group_mean[g]), minlength=n_clusters)
    v_q = float(n_clusters / max(n_clusters - 1, 1) * np.sum(per_cluster ** 2))
    parts, dfs = [], []
    for x in (a, b):
        seed_means = x @ w
        if len(seed_means) > 1:
            v = float(np.var(seed_means, ddof=1) / len(seed_means))
            parts.append(v)
            dfs.append(len(seed_means) - 1)
    v_s = float(sum(parts))
    se = float(np.sqrt(v_q + v_s))
    denom = sum(v ** 2 / df for v, df in zip(parts, dfs)) + v_q ** 2 / max(n_clusters - 1, 1)
    df = (v_q + v_s) ** 2 / denom if denom > 0 else float("inf")
    if se == 0:
        p = 1.0 if point == 0 else 0.0
        half = 0.0
    else:
        p = float(2 * sps.t.sf(abs(point) / se, df))
        half = float(sps.t.ppf(0.5 + level / 2, df) * se)
    return {"point": point, "low": point - half, "high": point + half, "se": se, "p_value": p, "df": float(df),
            "se_questions": float(np.sqrt(v_q)), "se_seeds": float(np.sqrt(v_s)), "level": level,
            "n_seeds_a": a.shape[0], "n_seeds_b": b.shape[0], "n_clusters": n_clusters,
            "seed_variance_known": a.shape[0] > 1 and b.shape[0] > 1}

def seed_question_interval(a, groups=None, clusters=None, level: float = 0.95) -> dict:
    """The macro mean of one arm (seeds x questions ``a``) with the interval of :func:`seed_question_test`:
    the question variance of the seed-averaged scores plus the seed variance; a one-seed arm has none."""
    a = np.asarray(a, dtype=float)
    return seed_question_test(a, np.zeros((1, a.shape[-1])), groups, clusters, level)

