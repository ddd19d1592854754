"""The budget axis (lib/budget_axis.py): profiles side by side by training budget, on made-up tables."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from lib import budget_axis as B
from lib import budget_report
from lib.errors import ConfigError


def comparisons(shift: float, outcome_cross: str) -> pd.DataFrame:
    rows = []
    for dataset in ("xquad_r", "mlqa_r"):
        for setting in ("mono", "cross", "multi"):
            for b, outcome in (("mono", "worse"), ("cross", outcome_cross)):
                est = -0.012 + shift if b == "mono" else -0.003 + shift
                rows.append({"claim": 1, "subset": "all", "dataset": dataset, "setting": setting, "metric": "map",
                             "a": "hybrid", "b": b, "estimate": est, "ci_low": est - 0.003, "ci_high": est + 0.003,
                             "outcome": outcome})
    return pd.DataFrame(rows)


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "results_dir", lambda p: tmp_path / p)
    steps = {"short": 120, "long": 480, "twin": 480}
    monkeypatch.setattr(B, "budget_of", lambda p: steps[p])
    for name, table, verdict in (("short", comparisons(0.0, "equivalent"), "not supported"),
                                 ("long", comparisons(0.02, "better"), "supported"),
                                 ("twin", comparisons(0.0, "equivalent"), "not supported")):
        (tmp_path / name).mkdir()
        table.to_csv(tmp_path / name / "comparisons.csv", index=False)
        pd.DataFrame({"claim": [1], "verdict": [verdict]}).to_csv(tmp_path / name / "verdicts.csv", index=False)
    return tmp_path


def test_changes_list_every_comparison_whose_outcome_moves(profiles):
    frame = B.comparisons_by_budget(["short", "long", "absent"])
    assert sorted(frame["steps"].unique()) == [120, 480] and B.missing(["short", "absent"]) == ["absent"]
    table = B.changes(frame)
    assert len(table) == 12 and int(table["changed"].sum()) == 6  # every hybrid-cross comparison
    moved = table[table["changed"]]
    assert set(moved["b"]) == {"cross"} and set(moved["outcome_480"]) == {"better"}
    assert moved["estimate_480"].sub(moved["estimate_120"]).round(6).eq(0.02).all()
    verdicts = B.verdicts_by_budget(["short", "long"]).set_index("claim")
    assert verdicts.loc[1, "verdict_120_steps"] == "not supported" and verdicts.loc[1, "changed"]


def test_two_profiles_with_one_budget_are_refused(profiles):
    with pytest.raises(ConfigError, match="share a training budget"):
        B.comparisons_by_budget(["long", "twin"])


def test_budget_figure(profiles, tmp_path):
    fig = budget_report.figure_budget(B.comparisons_by_budget(["short", "long"]), margin=0.01)
    assert len([ax for ax in fig.get_axes() if ax.get_visible()]) == 6
    fig.savefig(tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 10_000
    one = budget_report.figure_budget(B.comparisons_by_budget(["short"]))
    assert "fewer than two budgets" in " ".join(t.get_text() for ax in one.get_axes() for t in ax.texts)
