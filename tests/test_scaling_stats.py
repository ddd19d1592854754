"""Notebook 07's intervals over training seeds and questions (lib.scaling_stats), against direct computation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lib import scaling_stats as SS

CELLS = ("en-en", "en-de", "de-en")


def per_query(values: dict[str, np.ndarray], n_items: int) -> pd.DataFrame:
    """Frame of SS's input: ``values[model]`` has one value per (item, cell), items outermost."""
    rows = []
    for model, v in values.items():
        for i, (item, cell) in enumerate((item, cell) for item in range(n_items) for cell in CELLS):
            rows.append({"model": model, "query_id": f"{cell}/{item}", "item_id": str(item),
                         "group": "same" if cell == "en-en" else "cross", "cell": cell, "v": float(v[i])})
    return pd.DataFrame(rows)


def test_one_seed_constant_gap_is_exact_and_better():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.9, 40 * 3)
    frame = per_query({"hybrid": base, "mono": base - 0.1}, 40)
    est = SS.intervals(frame, "v").set_index(["model", "group"])
    cross = frame[(frame["model"] == "hybrid") & (frame["group"] == "cross")]
    assert est.loc[("hybrid", "cross"), "estimate"] == pytest.approx(cross.groupby("cell")["v"].mean().mean())
    assert est.loc[("hybrid", "cross"), "n_cells"] == 2 and est.loc[("hybrid", "cross"), "n_seeds"] == 1
    gap = SS.gaps(frame, "v", [("hybrid", "mono")]).set_index("group")
    assert gap.loc["cross", "estimate"] == pytest.approx(0.1)
    assert gap.loc["cross", "low"] == pytest.approx(0.1) and gap.loc["cross", "high"] == pytest.approx(0.1)
    assert gap.loc["cross", "p_value"] == 0.0 and gap.loc["cross", "outcome"] == "better"
    small = SS.gaps(per_query({"hybrid": base, "mono": base - 0.002}, 40), "v", [("hybrid", "mono")], margin=0.01)
    assert set(small["outcome"]) == {"equivalent"}  # significant, but inside the margin


def test_one_seed_interval_is_the_item_cluster_t_interval():
    rng = np.random.default_rng(3)
    n_items = 200
    item_effect = np.repeat(rng.normal(0, 0.2, n_items), 3)
    base = rng.uniform(0.3, 0.9, n_items * 3)
    frame = per_query({"h": base, "m": base - 0.01 - item_effect - rng.normal(0, 0.05, n_items * 3)}, n_items)
    gap = SS.gaps(frame, "v", [("h", "m")]).set_index("group")
    wide = frame.pivot_table(index=["item_id", "cell", "group"], columns="model", values="v").reset_index()
    wide["d"] = wide["h"] - wide["m"]
    for group, part in wide.groupby("group"):
        per_item = part.groupby("item_id")["d"].mean()  # every item has every cell of the group: macro = mean
        se = per_item.std(ddof=1) / np.sqrt(n_items)
        t = sps.t.ppf(0.975, n_items - 1)
        assert gap.loc[group, "estimate"] == pytest.approx(per_item.mean())
        assert gap.loc[group, "high"] - gap.loc[group, "low"] == pytest.approx(2 * t * se, rel=1e-6)
        assert gap.loc[group, "p_value"] == pytest.approx(2 * sps.t.sf(abs(per_item.mean()) / se, n_items - 1))


def test_seeds_pool_into_arms_and_add_their_variance():
    """Three seeds per arm: the estimate is the macro mean of the seed-averaged values and the variance
    adds var(per-seed macro means) / seeds of both arms to the question variance."""
    rng = np.random.default_rng(7)
    n_items, n = 60, 60 * 3
    base = rng.uniform(0.3, 0.9, n)
    seeds_a = [base + 0.03 + rng.normal(0, 0.02) + rng.normal(0, 0.05, n) for _ in range(3)]
    seeds_b = [base + rng.normal(0, 0.02) + rng.normal(0, 0.05, n) for _ in range(3)]
    values = {f"h_s{i}": v for i, v in enumerate(seeds_a)} | {f"m_s{i}": v for i, v in enumerate(seeds_b)}
    frame = per_query(values, n_items)
    arms = {m: m.split("_")[0] for m in values}
    est = SS.intervals(frame, "v", arms).set_index(["model", "group"])
    assert est.loc[("h", "same"), "n_seeds"] == 3 and est.loc[("h", "same"), "seeds"] == "h_s0,h_s1,h_s2"
    same = np.arange(n) % 3 == 0
    assert est.loc[("h", "same"), "estimate"] == pytest.approx(np.mean([v[same].mean() for v in seeds_a]))
    gap = SS.gaps(frame, "v", [("h", "m")], arms).set_index("group")
    d = np.mean(seeds_a, 0)[same] - np.mean(seeds_b, 0)[same]  # one cell: items are the rows
    v_q = d.var(ddof=1) / len(d)
    v_s = np.var([v[same].mean() for v in seeds_a], ddof=1) / 3 + np.var([v[same].mean() for v in seeds_b],
                                                                          ddof=1) / 3
    assert gap.loc["same", "estimate"] == pytest.approx(d.mean())
    t_half = (gap.loc["same", "high"] - gap.loc["same", "low"]) / 2
    assert t_half > 1.96 * np.sqrt(v_q + v_s)  # a t interval with Welch df is wider than the normal one
    assert t_half < sps.t.ppf(0.975, 2) * np.sqrt(v_q + v_s)  # ... and narrower than with 2 df
    assert (gap.loc["same", "n_seeds_a"], gap.loc["same", "n_seeds_b"]) == (3, 3)


def test_known_answers_over_simulations():
    """A true gap of 0 with 3 seeds is mostly 'equivalent' (margin 0.01), a true gap of 0.03 'better'."""
    rng = np.random.default_rng(11)
    outcomes = {0.0: [], 0.03: []}
    for shift in outcomes:
        for _ in range(40):
            n_items, n = 300, 300 * 3
            base = rng.uniform(0.3, 0.9, n)
            values = {f"h_s{i}": base + shift + rng.normal(0, 0.002) + rng.normal(0, 0.03, n) for i in range(3)}
            values |= {f"m_s{i}": base + rng.normal(0, 0.002) + rng.normal(0, 0.03, n) for i in range(3)}
            frame = per_query(values, n_items)
            arms = {m: m.split("_")[0] for m in values}
            gap = SS.gaps(frame, "v", [("h", "m")], arms, margin=0.01)
            outcomes[shift].append(gap.set_index("group").loc["cross", "outcome"])
    assert np.mean([o == "equivalent" for o in outcomes[0.0]]) >= 0.9
    assert all(o == "better" for o in outcomes[0.03])


def test_missing_arm_or_question_is_skipped_not_misaligned():
    base = np.linspace(0.2, 0.8, 10 * 3)
    frame = per_query({"h": base, "m": base - 0.05}, 10)
    frame = frame[~((frame["model"] == "m") & (frame["query_id"] == "en-de/0"))]  # one answer missing
    gap = SS.gaps(frame, "v", [("h", "m"), ("h", "absent")]).set_index("group")
    assert len(gap) == 2 and gap.loc["cross", "estimate"] == pytest.approx(0.05)


def test_students_quality_table_with_recipes():
    """Measured untuned rows get their student's recipe (the 12-layer teacher and published rows none)."""
    from lib import scaling_report as report

    est = pd.DataFrame([{"model": f"zero-shot_{name}", "group": "all", "estimate": v, "low": v - 0.01,
                         "high": v + 0.01, "strategy": "zero-shot", "layers": k, "non_embedding_params": p}
                        for name, k, v, p in (("distilled-L3", 3, 0.44, 5.3e6), ("embedded", 12, 0.73, 21.3e6))])
    recipes = pd.DataFrame([{"student": "distilled-L3", "layers": 3, "teacher_layers": [3, 7, 11], "texts": 20000,
                             "steps": 1200, "held_out_cosine": 0.95, "distill_seconds": 1211.0, "bf16": True,
                             "cpu_model": "AMD EPYC"}])
    table = report.with_recipes(report.quality_table(est), recipes)
    measured = table[table["source"].str.startswith("measured")].set_index("layers")
    assert measured.loc[3, "distill_seconds"] == 1211.0 and measured.loc[3, "teacher_layers"] == "3 7 11"
    assert measured.loc[3, "distill_cpu"] == "AMD EPYC" and pd.isna(measured.loc[12, "distill_seconds"])
    published = table[table["source"].str.startswith("published")]
    assert len(published) == len(report.PUBLISHED_MLQA_NDCG10) and published["distill_seconds"].isna().all()
    assert report.with_recipes(table, pd.DataFrame()).equals(table)
