"""What each notebook must have produced: the check its last cell runs.

``check_notebook(number, profile)`` reads what the notebook wrote under
``results/<profile>/`` and raises :class:`lib.errors.DataError` listing every
problem: a missing or empty file, a published table with too few rows or a
NaN in a column that must be complete, a verdict table without exactly one
verdict per claim, a figure file missing or empty. A flipped verdict or an
empty panel then fails the run (and nbval in CI) instead of passing silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lib.errors import DataError
from lib.paths import figures_dir, results_dir

VERDICTS = ("supported", "not supported", "inconclusive")
OUTCOMES = ("better", "worse", "equivalent", "inconclusive", "not substantial", "no data")


@dataclass(frozen=True)
class Table:
    name: str
    min_rows: int = 1
    complete: tuple[str, ...] = ()  # columns without NaN
    columns: tuple[str, ...] = ()  # columns that must exist
    query: str = ""  # rows the completeness check applies to (pandas query), e.g. "n_queries > 0"


@dataclass(frozen=True)
class Expectation:
    tables: tuple[Table, ...] = ()
    figures: tuple[str, ...] = ()  # file name prefixes under results/<profile>/figures/
    folders: tuple[str, ...] = ()  # sub-folders that must exist and hold files
    extra: tuple[str, ...] = field(default_factory=tuple)  # named extra checks


EXPECTED: dict[str, Expectation] = {
    "01": Expectation(tables=(Table("data_summary.csv", 10, ("dataset", "role", "count")),),
                      figures=("01_",)),
    "02": Expectation(figures=("02_",), folders=("sampling",)),
    "03": Expectation(folders=("models",), extra=("train_logs",)),
    "04": Expectation(tables=(Table("metrics.csv", 10, ("model", "strategy", "value"), query="n_queries > 0"),
                              Table("verdicts.csv", 3, ("claim", "verdict")),
                              Table("comparisons.csv", 3, ("claim", "estimate", "ci_low", "ci_high", "p_value",
                                                           "p_holm", "margin", "outcome")),
                              Table("04_paired_tests.csv", 1, ("outcome",)),
                              Table("04_strategy_table.csv", 1, ("mean",)),
                              Table("04_alpha_axis.csv", 3, ("alpha", "estimate", "low", "high", "vs_best_outcome")),
                              Table("04_checkpoints.csv", 1, ("model", "best_step", "best_val_loss", "flat")),
                              Table("04_seed_values.csv", 3, ("arm", "model", "dataset", "setting", "metric",
                                                              "value")),
                              Table("04_evaluation_times.csv", 1, ("model", "dataset", "seconds", "cpu_model"))),
                      figures=("04_",), extra=("verdicts",)),
    "05": Expectation(tables=(Table("05_bias_summary.csv", 2, ("rank_distance",)),
                              Table("05_rank_distance.csv", 1)),
                      figures=("05_",)),
    "06": Expectation(tables=(Table("efficiency.csv", 10, ("model", "value")),), figures=("06_",)),
    "07": Expectation(tables=(Table("scaling.csv", 1, ("model", "layers")),
                              Table("07_mlqa_estimates.csv", 3, ("model", "estimate", "low", "high", "n_seeds")),
                              Table("07_mlqa_gaps.csv", 1, ("model_a", "model_b", "estimate", "low", "high",
                                                            "outcome")),
                              Table("07_students.csv", 1, ("model", "mlqa_retrieval_ndcg10", "source"))),
                      figures=("07_",)),
}


def _table_problems(folder: Path, t: Table) -> list[str]:
    path = folder / t.name
    if not path.is_file() or path.stat().st_size == 0:
        return [f"{path} is missing or empty"]
    frame = pd.read_csv(path)
    out = []
    if len(frame) < t.min_rows:
        out.append(f"{path}: {len(frame)} rows, expected at least {t.min_rows}")
    missing = [c for c in (*t.columns, *t.complete) if c not in frame.columns]
    if missing:
        out.append(f"{path}: column(s) {missing} missing")
    rows = frame.query(t.query) if t.query and not missing else frame
    for c in t.complete:
        if c in rows.columns and rows[c].isna().any():
            out.append(f"{path}: {int(rows[c].isna().sum())} NaN value(s) in column {c!r}")
    return out


def _verdict_problems(folder: Path) -> list[str]:
    path = folder / "verdicts.csv"
    if not path.is_file():
        return []
    v = pd.read_csv(path)
    out = []
    counts = v["claim"].value_counts()
    if sorted(counts.index.tolist()) != [1, 2, 3] or (counts != 1).any():
        out.append(f"{path}: expected exactly one verdict for each of claims 1, 2, 3; got {dict(counts)}")
    bad = sorted(set(v["verdict"]) - set(VERDICTS))
    if bad:
        out.append(f"{path}: unknown verdict(s) {bad}; allowed {VERDICTS}")
    comp = folder / "comparisons.csv"
    if comp.is_file():
        outcomes = set(pd.read_csv(comp)["outcome"].dropna())
        if outcomes - set(OUTCOMES):
            out.append(f"{comp}: unknown outcome(s) {sorted(outcomes - set(OUTCOMES))}")
    return out


def _train_log_problems(folder: Path, run: str | None = None) -> list[str]:
    """Every finished run's log (or only ``run``'s): steps and no NaN loss. A run folder that holds only a
    resumable ``checkpoint/`` is another sweep combination still to come (or interrupted), not a problem of
    the notebook that checks; with ``run`` given, that run must have finished."""
    models = folder / "models"
    runs = [p for p in models.iterdir() if p.is_dir()] if models.is_dir() else []
    if run is not None:
        runs = [models / run]
    out = []
    for path in runs:
        log = path / "train_log.csv"
        if run is None and not log.is_file() and (path / "checkpoint").is_dir():
            continue  # in progress: the runner resumes it
        if not log.is_file():
            out.append(f"{path}: no train_log.csv (the run did not finish)")
            continue
        frame = pd.read_csv(log)
        steps = frame[frame["step"] > 0]
        if steps.empty or steps["loss"].isna().any():
            out.append(f"{log}: no training steps, or a NaN loss")
    return out


EXTRA = {"verdicts": _verdict_problems, "train_logs": _train_log_problems}


def problems(number: str, profile: str, run: str | None = None) -> list[str]:
    """Every problem with what notebook ``number`` (``"01"`` .. ``"07"``) wrote for ``profile``; ``run``
    narrows notebook 03's check to the run folder that notebook trained."""
    if number not in EXPECTED:
        raise DataError(f"check_notebook: no expectations for notebook {number!r}; known: {sorted(EXPECTED)}")
    exp = EXPECTED[number]
    folder = results_dir(profile)
    out = []
    for t in exp.tables:
        out += _table_problems(folder, t)
    for sub in exp.folders:
        path = folder / sub
        if not path.is_dir() or not any(path.iterdir()):
            out.append(f"{path} is missing or empty")
    figs = figures_dir(profile)
    for prefix in exp.figures:
        found = sorted(figs.glob(f"{prefix}*.png")) if figs.is_dir() else []
        if not found:
            out.append(f"no figure {prefix}*.png in {figs}")
        out += [f"{f} is empty" for f in found if f.stat().st_size == 0]
    for name in exp.extra:
        out += EXTRA[name](folder, run) if name == "train_logs" else EXTRA[name](folder)
    return out


def check_notebook(number: str, profile: str, run: str | None = None) -> str:
    """Raise DataError listing every problem; return a one-line summary when there is none."""
    found = problems(number, profile, run)
    if found:
        raise DataError(f"notebook {number} on profile {profile!r} left {len(found)} problem(s):\n- "
                        + "\n- ".join(found))
    exp = EXPECTED[number]
    return (f"notebook {number} outputs checked: {len(exp.tables)} table(s), {len(exp.figures)} figure group(s), "
            f"{len(exp.folders)} folder(s), {len(exp.extra)} extra check(s) - all present and complete")
