"""Same learning after a change to the training step: retrain one finished run with the current code.

    python benchmarks/train_equivalence.py                       # default profile, run hybrid_a0.5_s0
    python benchmarks/train_equivalence.py --run mono_s0 --keep /tmp/mono_s0_now
    python benchmarks/train_equivalence.py --models ../other-checkout/results/default/models

Reads the run's ``train_config.json`` from ``results/<profile>/models/<run>/``,
trains the same config (same seed, so the same batches and initial weights)
with the code as it is now into a scratch folder, and prints, step by step
and summarised: the training loss and validation loss of the stored run and
of the new one, their difference, and how far the stored runs of the same
strategy with other seeds lie from the stored run (the seed spread: batches
and dropout both differ there). A change that keeps the learning gives
differences well inside the seed spread. It also prints the training
seconds of both with their machine and precision (comparable only on one
machine kind) and the step implementation each used. Output: stdout (keep
it under ``benchmarks/results/``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lib.errors import DataError  # noqa: E402
from lib.machine import describe  # noqa: E402
from lib.paths import results_dir  # noqa: E402
from lib.training import TrainConfig, run_name, train  # noqa: E402


def stored(folder: Path) -> tuple[dict, pd.DataFrame]:
    config, log = folder / "train_config.json", folder / "train_log.csv"
    for path in (config, log):
        if not path.is_file():
            raise DataError(f"{path} is missing: train the run first (notebook 03 of the profile)")
    return json.loads(config.read_text()), pd.read_csv(log)


def siblings(models: Path, cfg: TrainConfig) -> dict[str, pd.DataFrame]:
    """Train logs of the other seeds of the run's strategy and alpha (same budget and backbone)."""
    out = {}
    for folder in sorted(models.iterdir()):
        path = folder / "train_config.json"
        if folder.name == run_name(cfg) or not path.is_file() or not (folder / "train_log.csv").is_file():
            continue
        other = json.loads(path.read_text())
        same = {k: other.get(k) for k in ("strategy", "alpha", "steps", "batch_size", "backbone", "num_layers",
                                          "lr", "max_items")}
        if same == {k: getattr(cfg, k) for k in same}:
            out[folder.name] = pd.read_csv(folder / "train_log.csv")
    return out


def smooth(log: pd.DataFrame, window: int) -> pd.Series:
    """Training loss per step, rolling mean over ``window`` steps (one batch's loss is noisy)."""
    return log[log["step"] > 0].set_index("step")["loss"].rolling(window, min_periods=1).mean()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--run", default="hybrid_a0.5_s0", help="a finished run folder under results/<profile>/models")
    ap.add_argument("--models", default="", help="folder of run folders (default: results/<profile>/models)")
    ap.add_argument("--window", type=int, default=10, help="steps in the rolling mean of the training loss")
    ap.add_argument("--keep", default="", help="train into this folder and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    models = Path(args.models) if args.models else results_dir(args.profile) / "models"
    saved, old_log = stored(models / args.run)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in names})
    if "bf16_used" in saved:  # the stored run's precision, not this machine's choice for "auto"
        cfg.bf16 = bool(saved["bf16_used"])
    others = siblings(models, cfg)
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="train_equivalence_"))
    out = scratch / run_name(cfg)
    print(f"machine now: {describe()}")
    print(f"stored run {models / args.run}: {saved.get('train_seconds')} s of training on "
          f"{saved.get('cpu_model')} ({saved.get('precision')}), step implementation "
          f"{saved.get('step_implementation', 'one padded call per side, AdamW (foreach)')}")
    print(f"retraining into {out} (seed {cfg.seed}: same batches and initial weights) ...", flush=True)
    try:
        train(cfg, out, progress=True)
        new_facts, new_log = stored(out)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"new run: {new_facts['train_seconds']} s of training on {new_facts['cpu_model']} "
          f"({new_facts['precision']}), step implementation {new_facts.get('step_implementation')}")

    old_s, new_s = smooth(old_log, args.window), smooth(new_log, args.window)
    val = lambda log: log.dropna(subset=["val_loss"]).set_index("step")["val_loss"]  # noqa: E731
    table = pd.DataFrame({"loss_stored": old_s, "loss_now": new_s})
    table["diff"] = table["loss_now"] - table["loss_stored"]
    seed_diffs = pd.DataFrame({name: smooth(log, args.window) - old_s for name, log in others.items()})
    table["seed_spread"] = seed_diffs.abs().max(axis=1) if len(seed_diffs.columns) else np.nan
    table = table.join(pd.DataFrame({"val_stored": val(old_log), "val_now": val(new_log)}), how="left")
    shown = table if len(table) <= 20 else table[(table.index % 10 == 0) | (table.index == 1)]
    print(f"\ntraining loss (rolling mean over {args.window} steps), validation loss where evaluated; "
          f"seed_spread: largest |difference| of the other seeds' stored runs ({', '.join(others) or 'none'}) "
          "from the stored run")
    print(shown.round(4).to_string())
    mean_abs = float(table["diff"].abs().mean())
    spread = float(seed_diffs.abs().mean().mean()) if len(seed_diffs.columns) else float("nan")
    vals = pd.DataFrame({"stored": val(old_log), "now": val(new_log)}).dropna()
    val_gap = float((vals["now"] - vals["stored"]).abs().max())
    val_seeds = [float((val(log).reindex(vals.index) - vals["stored"]).abs().max()) for log in others.values()]
    print(f"\nmean |difference| of the smoothed training loss, now vs stored: {mean_abs:.4f}; "
          f"other seeds vs stored: {spread:.4f} (mean over {len(others)} seeds)")
    print(f"largest |difference| of the validation loss, now vs stored: {val_gap:.4f}; "
          f"other seeds vs stored: {', '.join(f'{v:.4f}' for v in val_seeds) or 'none'}")
    inside = bool(others) and mean_abs < spread and val_gap <= max(val_seeds)
    print("verdict: " + ("within the seed spread" if inside else
                         "NOT shown to be within the seed spread" + ("" if others else " (no other seeds)")))
    return 0 if inside else 1


if __name__ == "__main__":
    raise SystemExit(main())
