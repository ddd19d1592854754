"""The budget axis: do the verdicts change when every model trains longer?

The default profile trains each model for 120 steps of 32 pairs; the
``budget`` profile trains the same strategies for 480 (two seeds). Each
profile's notebook 04 writes ``comparisons.csv`` (every claim comparison with
its interval and outcome by the one verdict rule); this module puts the
profiles side by side by their training budget (notebook 03's ``steps`` in
each profile, :func:`lib.notebook.training_values`) and lists every
comparison whose outcome differs between budgets.

    frame = budget_axis.comparisons_by_budget(["default", "budget"])
    budget_axis.changes(frame)
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from lib.errors import ConfigError
from lib.notebook import training_values
from lib.paths import results_dir

KEYS = ["claim", "subset", "dataset", "setting", "metric", "a", "b"]


def budget_of(profile: str) -> int:
    """Optimizer steps per model in ``profile`` (its notebook-03 settings)."""
    return int(training_values(profile)["steps"])


def comparisons_by_budget(profiles: Sequence[str]) -> pd.DataFrame:
    """Every profile's ``comparisons.csv`` with ``profile`` and ``steps`` columns; profiles without one are
    left out (say which with :func:`missing`). ConfigError when two profiles share a budget."""
    parts = []
    for profile in profiles:
        path = results_dir(profile) / "comparisons.csv"
        if path.is_file():
            parts.append(pd.read_csv(path).assign(profile=profile, steps=budget_of(profile)))
    if not parts:
        return pd.DataFrame(columns=KEYS + ["estimate", "ci_low", "ci_high", "outcome", "profile", "steps"])
    frame = pd.concat(parts, ignore_index=True)
    shared = frame.groupby("steps")["profile"].nunique()
    if (shared > 1).any():
        raise ConfigError(f"profiles {sorted(frame['profile'].unique())} share a training budget "
                          f"({shared[shared > 1].index.tolist()} steps): the budget axis needs one profile per budget")
    return frame


def missing(profiles: Sequence[str]) -> list[str]:
    """The profiles that have no ``comparisons.csv`` yet (notebook 04 not run on them)."""
    return [p for p in profiles if not (results_dir(p) / "comparisons.csv").is_file()]


def changes(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison: its outcome (and estimate) at each budget, and whether the outcome changes."""
    if frame.empty:
        return pd.DataFrame(columns=KEYS + ["changed"])
    keys = [k for k in KEYS if k in frame.columns]
    outcome = frame.pivot_table(index=keys, columns="steps", values="outcome", aggfunc="first")
    estimate = frame.pivot_table(index=keys, columns="steps", values="estimate", aggfunc="first")
    out = outcome.add_prefix("outcome_").join(estimate.add_prefix("estimate_"))
    out.columns = [str(c) for c in out.columns]
    out["changed"] = outcome.nunique(axis=1, dropna=False) > 1
    return out.reset_index()


def verdicts_by_budget(profiles: Sequence[str]) -> pd.DataFrame:
    """Each profile's claim verdicts (``verdicts.csv``) by budget: claim x steps."""
    parts = []
    for profile in profiles:
        path = results_dir(profile) / "verdicts.csv"
        if path.is_file():
            parts.append(pd.read_csv(path)[["claim", "verdict"]].assign(steps=budget_of(profile)))
    if not parts:
        return pd.DataFrame(columns=["claim"])
    frame = pd.concat(parts, ignore_index=True)
    table = frame.pivot_table(index="claim", columns="steps", values="verdict", aggfunc="first")
    table.columns = [f"verdict_{c}_steps" for c in table.columns]
    table["changed"] = table.nunique(axis=1) > 1
    return table.reset_index()
