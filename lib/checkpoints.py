"""Checkpoint choice: does keeping the lowest-validation-loss checkpoint instead of the last step change
an answer?

The paper's rule, the study's default, keeps the checkpoint with the lowest
validation loss (a run's ``model/``); the run also keeps its last step
(``last/``, a pointer to ``model/`` when the two are the same step). This
module

- tabulates every run: the step kept, the validation loss there and at the
  last step, and whether the curve is *flat* (the rule kept an earlier step
  whose loss is within :data:`FLAT_SHARE` of the last step's: then the loss
  cannot really tell the two checkpoints apart and the choice is close to
  arbitrary);
- evaluates every run's last step into a results folder of its own,
  ``results/<profile>/checkpoint_last/`` (so no table of the main results can
  mix the two rules; a run whose kept checkpoint is the last step has its
  files copied there instead of evaluated twice);
- runs the same claims (:func:`lib.paper.check_claims`) on it and lists the
  verdicts and comparison outcomes under both rules side by side;
- for the flat runs, asks a better validation signal (:func:`retrieval_rule`):
  retrieval mAP of the held-out validation questions against all their
  validation passages pooled across languages (every passage of a question's
  item relevant, as in the multilingual setting), for the kept and the last
  checkpoint, and keeps the better one; when that changes any run's
  checkpoint, the claims are run again on the result
  (:func:`verdicts_under_retrieval`, ``results/<profile>/checkpoint_retrieval/``).
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lib import paper, training_data
from lib.metrics import average_precision
from lib.sampling import validation_batches
from lib.data import load_lareqa
from lib.evaluation import (data_fingerprint, evaluate_all, evaluate_model, has_evaluation_files, load_metrics,
                            load_per_query, metrics_path, per_query_path, read_manifest, up_to_date, upsert_metrics)
from lib.results import record
from lib.models import describe_model, last_is_kept
from lib.paths import atomic_write, results_dir

LAST_DIR = "checkpoint_last"
RETRIEVAL_DIR = "checkpoint_retrieval"
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
                     "flat": bool(rise < FLAT_SHARE) and not last_is_kept(run), "last_is_kept": last_is_kept(run),
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
            copy_evaluation(profile, last, run.name, datasets, kept, "evaluate the kept checkpoints first "
                            "(notebook 04, section 1)")
            continue
        spec = describe_model(str(run), run.name, 0, checkpoint="last")
        for dataset in datasets:
            if not up_to_date(last, spec, dataset, fps[dataset], manifest):
                evaluate_model(spec, dataset=dataset, profile=last, max_items=max_items, data=data[dataset],
                               progress=progress)
    return load_metrics(last)


def copy_evaluation(source: str, target: str, model: str, datasets: Sequence[str], metrics: pd.DataFrame,
                    hint: str) -> None:
    """Put ``model``'s evaluation on ``datasets`` from results namespace ``source`` into ``target``: its
    per-query file, its manifest entries and its rows of ``metrics`` (``source``'s metrics). No rank file: the
    copy is made again from ``source`` whenever it is needed, so git keeps each rank file once.
    FileNotFoundError with ``hint`` when the evaluation is missing."""
    entries = read_manifest(source)["entries"]
    for dataset in datasets:
        if not has_evaluation_files(source, model, dataset):
            raise FileNotFoundError(f"{per_query_path(source, model, dataset)} is missing: {hint}")
        load_per_query(source, model, dataset)  # rebuilt from the rank file when only that is here
        out = per_query_path(target, model, dataset)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(per_query_path(source, model, dataset), out)
        if f"{model}__{dataset}" in entries:
            record(target, f"{model}__{dataset}", entries[f"{model}__{dataset}"])
    rows = metrics[(metrics["model"] == model) & metrics["dataset"].isin(datasets)] if len(metrics) else metrics
    if len(rows):
        upsert_metrics(target, rows)


def evaluate_run(profile: str, run: Path, datasets: Sequence[str], max_items: int = 0,
                 progress: bool | None = None) -> pd.DataFrame:
    """Everything notebook 04 needs from one finished run's weights, right after its training: the kept
    checkpoint on ``datasets`` (as :func:`lib.evaluation.evaluate_all`), the last step (:func:`evaluate_last`)
    and, where the validation loss is flat, the pooled validation mAP of both (:func:`retrieval_rule`).
    What is up to date is skipped. Returns the run's macro mAP per dataset, setting and checkpoint rule."""
    run = Path(run)
    kept = evaluate_all(profile, datasets=datasets, max_items=max_items, models=[run.name], zero_shot=False,
                        progress=progress)
    last = evaluate_last(profile, [run], datasets, max_items=max_items, progress=progress)
    retrieval_rule([run])
    parts = []
    for rule, frame in (("kept", kept), ("last", last)):
        mine = frame[(frame["model"] == run.name) & frame["dataset"].isin(list(datasets))
                     & (frame["metric"] == "map")]
        parts.append(mine.groupby(["dataset", "setting"])["value"].mean().rename(rule))
    return pd.concat(parts, axis=1).reset_index()


def compare_rules(verdicts: pd.DataFrame, comparisons: pd.DataFrame, verdicts_last: pd.DataFrame,
                  comparisons_last: pd.DataFrame, other: str = "last") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claims, comparisons) under the kept rule and the ``other`` one side by side (columns suffixed
    ``_kept`` and ``_<other>``), with a ``changed`` column each."""
    suffixes = ("_kept", f"_{other}")
    claims = verdicts[["claim", "verdict"]].merge(verdicts_last[["claim", "verdict"]], on="claim",
                                                  suffixes=suffixes, how="outer")
    claims["changed"] = claims["verdict_kept"] != claims[f"verdict_{other}"]
    keys = ["claim", "subset", "dataset", "setting", "metric", "arm_a", "arm_b"]
    keys = [k for k in keys if k in comparisons.columns and k in comparisons_last.columns]
    both = comparisons[keys + ["diff", "outcome"]].merge(comparisons_last[keys + ["diff", "outcome"]], on=keys,
                                                         suffixes=suffixes, how="outer")
    both["changed"] = both["outcome_kept"] != both[f"outcome_{other}"]
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


# --------------------------------------------------------------------------
# A better validation signal where the loss is flat


@dataclass(frozen=True)
class ValidationPool:
    """Held-out validation questions, their distinct passages (all languages pooled) and, per question, the
    positions of its relevant passages (every passage of its item)."""
    queries: list[str]
    passages: list[str]
    relevant: list[list[int]]


def validation_pool(max_items: int = 0, batch_size: int = 32, val_pairs: int = 256) -> ValidationPool:
    """The validation pairs a run's loss was computed on (:func:`lib.sampling.validation_batches` with the
    run's ``max_items``, ``batch_size`` and ``val_pairs``), as a retrieval pool."""
    pairs = training_data.load_training_pairs(max_items=max_items)
    rows = [r for batch in validation_batches(pairs, batch_size, val_pairs) for r in batch]
    val = pairs.iloc[rows]
    passages = list(pd.unique(val["passage"].astype(str)))
    index = {p: i for i, p in enumerate(passages)}
    by_item: dict[str, set[int]] = {}
    for item, passage in zip(val["item_id"].astype(str), val["passage"].astype(str)):
        by_item.setdefault(item, set()).add(index[passage])
    return ValidationPool(queries=val["query"].astype(str).tolist(), passages=passages,
                          relevant=[sorted(by_item[i]) for i in val["item_id"].astype(str)])


def pool_map(queries: np.ndarray, passages: np.ndarray, relevant: Sequence[Sequence[int]]) -> float:
    """Mean AP of each query's relevant passages in the whole pool (cosine scores; ties against relevant)."""
    scores = queries @ passages.T
    aps = []
    for i, rel in enumerate(relevant):
        is_rel = np.zeros(scores.shape[1], dtype=bool)
        is_rel[list(rel)] = True
        order = np.lexsort((is_rel, -scores[i]))  # by score, a tied non-relevant passage first
        ranks = np.flatnonzero(is_rel[order]) + 1
        aps.append(average_precision(ranks))
    return float(np.mean(aps)) if aps else math.nan


VALIDATION_FILE = "validation_map.json"  # per run: each checkpoint's pooled validation mAP, by fingerprint


def validation_map(run: Path, checkpoint: str, pool: ValidationPool, cfg: dict) -> float:
    """Pooled validation mAP of one checkpoint (``"model"`` = kept, ``"last"``) of a run. Kept in the run's
    ``validation_map.json`` under the checkpoint's fingerprint (it travels with the run's record, so a run
    whose weights are elsewhere keeps its value); recomputed when the weights or the pool changed."""
    spec = describe_model(str(run), run.name, 0, checkpoint="last" if checkpoint == "last" else "model")
    path = Path(run) / VALIDATION_FILE
    cached = json.loads(path.read_text()) if path.is_file() else {}
    key = f"{spec.fingerprint}:{len(pool.queries)}:{len(pool.passages)}"
    if key in cached:
        return float(cached[key])
    encoder = spec.load()
    q = encoder.encode(pool.queries, "query", max_length=int(cfg.get("max_query_length", 64)), progress=False)
    p = encoder.encode(pool.passages, "passage", max_length=int(cfg.get("max_passage_length", 96)),
                       progress=False)
    value = pool_map(q, p, pool.relevant)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({**cached, key: value}, indent=1, sort_keys=True) + "\n")
    return value


RULE_COLUMNS = ["model", "flat", "val_map_kept", "val_map_last", "chosen"]


def retrieval_rule(runs: Sequence[Path], table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run, the checkpoint a retrieval signal keeps: for a flat run (see :func:`run_table`) the kept or
    the last step, whichever has the higher pooled validation mAP (ties keep the loss's choice); any other
    run keeps the loss's choice (``chosen`` = ``kept``) without being encoded."""
    table = run_table(runs) if table is None else table
    flat = dict(zip(table["model"], table["flat"]))
    pools: dict[tuple, ValidationPool] = {}
    rows = []
    for run in runs:
        row = {"model": run.name, "flat": bool(flat.get(run.name, False)), "val_map_kept": math.nan,
               "val_map_last": math.nan, "chosen": "kept"}
        if row["flat"]:
            cfg = json.loads((run / "train_config.json").read_text())
            key = (int(cfg.get("max_items", 0)), int(cfg.get("batch_size", 32)), int(cfg.get("val_pairs", 256)))
            if key not in pools:
                pools[key] = validation_pool(*key)
            row["val_map_kept"] = validation_map(run, "model", pools[key], cfg)
            row["val_map_last"] = validation_map(run, "last", pools[key], cfg)
            row["chosen"] = "last" if row["val_map_last"] > row["val_map_kept"] else "kept"
        rows.append(row)
    return pd.DataFrame(rows, columns=RULE_COLUMNS)


def retrieval_profile(profile: str) -> str:
    return f"{profile}/{RETRIEVAL_DIR}"


def verdicts_under_retrieval(profile: str, rule: pd.DataFrame, datasets: Sequence[str], margin: float = 0.01,
                             n_permutations: int = 10_000, n_bootstrap: int = 2000
                             ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The claims with every run at the checkpoint :func:`retrieval_rule` chose; None when it chose the loss's
    checkpoint for every run (the verdicts are then the kept rule's). Needs the last steps evaluated
    (:func:`evaluate_last`)."""
    if not (rule["chosen"] == "last").any():
        return None
    target = retrieval_profile(profile)
    sources = {"kept": profile, "last": last_profile(profile)}
    metrics = {name: load_metrics(source) for name, source in sources.items()}  # read once, not per run
    shutil.rmtree(results_dir(target), ignore_errors=True)  # rebuilt from the two rules' files every time
    for r in rule.itertuples():
        copy_evaluation(sources[r.chosen], target, r.model, datasets, metrics[r.chosen],
                        f"evaluate the {r.chosen} checkpoints first (notebook 04, sections 1 and 10)")
    return paper.check_claims(target, load_metrics(target), datasets, margin=margin,
                              n_permutations=n_permutations, n_bootstrap=n_bootstrap)
