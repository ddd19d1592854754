"""The study's statistics on simulated studies with a known answer: coverage, false rejections, verdicts.

A simulated study has two strategies scored on the same questions (items with
one translation per language sharing an item effect), each trained with
``n_seeds`` seeds; a seed shifts all of its strategy's scores (``sd_seed``)
and adds per-question noise (``sd_noise``); strategy A is ``true_diff``
above B. :func:`calibrate` runs many such studies and reports, per method,
how often the 95% interval covers the true difference, how often a true
difference of 0 is rejected, and how often the verdict rule
(:func:`lib.stats.compare_verdict`) gives each outcome. Methods: the
seed-aware t interval the study uses (:func:`lib.stats.seed_question_test`),
the two-stage bootstrap (:func:`lib.stats.seed_question_bootstrap`), and the
question-only test on seed-averaged scores (what ignoring seeds gives).

    python benchmarks/stats_calibration.py     # the table the README quotes
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lib import stats as S

N_ITEMS, LANGS = 100, ("x", "y", "z")
METHODS = ("seed-aware t", "two-stage bootstrap", "questions only (seeds averaged)")


def simulate(rng: np.random.Generator, n_seeds: int, sd_seed: float, true_diff: float = 0.0,
             sd_noise: float = 0.05, n_items: int = N_ITEMS):
    """``(a, b, langs, items)``: per-seed per-question scores (n_seeds x n_questions) of two strategies."""
    items = np.repeat(np.arange(n_items), len(LANGS))
    langs = np.tile(np.array(LANGS), n_items)
    item_effect = np.repeat(rng.normal(0, 0.2, n_items), len(LANGS))
    n = len(items)

    def arm(shift):
        return (0.6 + shift + item_effect + rng.normal(0, sd_seed, (n_seeds, 1))
                + rng.normal(0, sd_noise, (n_seeds, n)))

    return arm(true_diff), arm(0.0), langs, items


def _result(method: str, a, b, langs, items, n_bootstrap: int) -> dict:
    if method == METHODS[0]:
        return S.seed_question_test(a, b, langs, items)
    if method == METHODS[1]:
        return S.seed_question_bootstrap(a, b, langs, items, n_bootstrap=n_bootstrap)
    return S.seed_question_test(a.mean(0, keepdims=True), b.mean(0, keepdims=True), langs, items)  # one "seed"


def calibrate(scenarios: Sequence[dict], replicates: int = 500, methods: Sequence[str] = METHODS,
              margin: float = 0.01, n_bootstrap: int = 500, seed: int = 0) -> pd.DataFrame:
    """One row per (scenario, method): coverage of the true difference, rejection rate (p < 0.05) and the
    share of each verdict over ``replicates`` simulated studies. A scenario is a dict of :func:`simulate`'s
    keyword arguments (``n_seeds``, ``sd_seed``, ``true_diff``, ``sd_noise``)."""
    rows = []
    for k, scenario in enumerate(scenarios):
        rng = np.random.default_rng(seed + k)
        studies = [simulate(rng, **scenario) for _ in range(replicates)]
        truth = scenario.get("true_diff", 0.0)
        for method in methods:
            covered = rejected = 0
            outcomes: dict[str, int] = {}
            for a, b, langs, items in studies:
                res = _result(method, a, b, langs, items, n_bootstrap)
                covered += res["low"] <= truth <= res["high"]
                rejected += res["p_value"] < 0.05
                o = S.compare_verdict(res["point"], res["low"], res["high"], res["p_value"], margin=margin)
                outcomes[o] = outcomes.get(o, 0) + 1
            rows.append({**scenario, "method": method, "replicates": replicates, "coverage": covered / replicates,
                         "rejection_rate": rejected / replicates,
                         **{f"share_{o}": outcomes.get(o, 0) / replicates
                            for o in ("better", "worse", "equivalent", "inconclusive")}})
    return pd.DataFrame(rows)
