"""Checkpoint choice: does keeping the lowest-validation-loss checkpoint instead of the last step change
an answer?

The paper's rule, the study's default, keeps the checkpoint with the lowest
validation loss (a run's ``model/``); the run also keeps its last step
(``last/``, a pointer to ``model/`` when the two are the same step). This
module

- tabulates every run: the step kept, the validation loss there and at the
  last step, and whether the validation curve is *flat* (the last step's
  loss within :data:`FLAT_SHARE` of the best: then the loss cannot really
  tell the checkpoints apart and the choice is close to arbitrary);
- evaluates every run's last step into a results folder of its own,
  ``results/<profile>/checkpoint_last/`` (so no table of the main results can
  mix the two rules; a run whose kept checkpoint is the last step has its
  files copied there instead of evaluated twice);
- runs the same claims (:func:`lib.paper.check_claims`) on it and lists the
  verdicts and comparison outcomes under both rules side by side.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from lib import paper
from lib.data import load_lareqa
from lib.evaluation import (data_fingerprint, evaluate_model, load_metrics, metrics_path, per_query_path,
                            read_manifest, up_to_date, upsert_metrics)
from lib.models import describe_model, last_is_kept
from lib.paths import results_dir

LAST_DIR = "checkpoint_last"
FLAT_SHARE = 0.02  # last-step validation loss within 2% of the best: a flat curve
RUN_COLUMNS = ["model", "strategy", "alpha", "seed", "steps", "best_step", "best_val_loss", "last_val_loss",
               "val_loss_rise", "flat", "last_is_kept", "train_seconds", "cpu_model", "precision"]


def last_profile(profile: str) -> str:
    """The results namespace of the last-step rule: ``results/<profile>/checkpoint_last/``."""
    return f"{profile}/{LAST_DIR}"


def run_table(runs: Sequence[Path]) -> pd.DataFrame:
    """One row per run (RUN_COLUMNS) from its ``train_config.json`` and ``train_log.csv``, with the
    training time and the machine it was spent on (empty for runs trained before that was recorded)."""
    rows = []
    for run in runs:
        cfg = pd.read_json(run / "train_config.json", typ="series")
        log = pd.read_csv(run / "train_log.csv")
        val = log.dropna(subset=["val_loss"])
        last = float(val["val_loss"].iloc[-1]) if len(val) else math.nan
        best = float(cfg.get("best_val_loss", math.nan))
        rise = last / best - 1 if best and not math.isnan(best) else math.nan
        rows.append({"model": run.name, "strategy": cfg["strategy"], "alpha": float(cfg["alpha"]),
                     "seed": int(cfg["seed"]), "steps": int(cfg["steps"]), "best_step": int(cfg["best_step"]),
                     "best_val_loss": best, "last_val_loss": last, "val_loss_rise": rise,
                     "flat": bool(rise < FLAT_SHARE), "last_is_kept": last_is_kept(run),
                     "train_seconds": float(cfg.get("train_seconds", math.nan)),
                     "cpu_model": cfg.get("cpu_model", ""), "precision": cfg.get("precision", "")})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def evaluate_last(profile: str, runs: Sequence[Path], datasets: Sequence[str], max_items: int = 0,
                  progress: bool | None = None) -> pd.DataFrame:
    """Every run's last step on ``datasets`` under :func:`last_profile` (named like the run); returns its
    metrics. Up-to-date evaluations are skipped, as in notebook 04."""
    last = last_profile(profile)
    kept = load_metrics(profile) if metrics_path(profile).is_file() else pd.DataFrame()
    data = {d: load_lareqa(d, max_items=max_items) for d in datasets}
    fps = {d: data_fingerprint(s) for d, s in data.items()}
    manifest = read_manifest(last)["entries"]
    for run in runs:
        if last_is_kept(run):  # the same weights: reuse the kept checkpoint's results
            rows = kept[(kept["model"] == run.name) & kept["dataset"].isin(datasets)]
            for dataset in datasets:
                source = per_query_path(profile, run.name, dataset)
                if not source.is_file():
                    raise FileNotFoundError(f"{source} is missing: evaluate the kept checkpoints first "
                                            "(notebook 04, section 1)")
                target = per_query_path(last, run.name, dataset)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            if len(rows):
                upsert_metrics(last, rows)
            continue
        spec = describe_model(str(run), run.name, 0, checkpoint="last")
        for dataset in datasets:
            if not up_to_date(last, spec, dataset, fps[dataset], manifest):
                evaluate_model(spec, dataset=dataset, profile=last, max_items=max_items, data=data[dataset],
                               progress=progress)
    return load_metrics(last)


def compare_rules(verdicts: pd.DataFrame, comparisons: pd.DataFrame, verdicts_last: pd.DataFrame,
                  comparisons_last: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claims, comparisons) under both rules side by side, with a ``changed`` column each."""
    claims = verdicts[["claim", "verdict"]].merge(verdicts_last[["claim", "verdict"]], on="claim",
                                                  suffixes=("_kept", "_last"), how="outer")
    claims["changed"] = claims["verdict_kept"] != claims["verdict_last"]
    keys = ["claim", "subset", "dataset", "setting", "metric", "arm_a", "arm_b"]
    keys = [k for k in keys if k in comparisons.columns and k in comparisons_last.columns]
    both = comparisons[keys + ["diff", "outcome"]].merge(comparisons_last[keys + ["diff", "outcome"]], on=keys,
                                                         suffixes=("_kept", "_last"), how="outer")
    both["changed"] = both["outcome_kept"] != both["outcome_last"]
    return claims, both


def verdicts_under_last(profile: str, runs: Sequence[Path], datasets: Sequence[str], max_items: int = 0,
                        margin: float = 0.01, n_permutations: int = 10_000, n_bootstrap: int = 2000,
                        progress: bool | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate the last steps and run the claims on them: ``(verdicts, comparisons)`` of the last rule."""
    metrics_last = evaluate_last(profile, runs, datasets, max_items=max_items, progress=progress)
    return paper.check_claims(last_profile(profile), metrics_last, datasets, margin=margin,
                              n_permutations=n_permutations, n_bootstrap=n_bootstrap)


def folder(profile: str) -> Path:
    return results_dir(last_profile(profile))
