"""Figure of notebook 03: the loss curves of every training run of a profile in one grid.

:func:`load_train_logs` reads ``results/<profile>/models/<run>/train_log.csv``
and ``train_config.json`` of every finished or running run;
:func:`figure_loss_grid` draws strategy (rows) x seed (columns) with one
shared y axis.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from lib.paths import results_dir
from lib.plots import color, empty_figure, label, ordered

WHY_THEY_DIFFER = (
    "computed in eval mode (dropout off, lib.contrastive.validation_loss) on fixed held-out batches that are the "
    "same for every strategy and mix languages and batch kinds, while training loss is taken with dropout on, on "
    "the strategy's own batches, before each step's update")


def loss_caption(logs: pd.DataFrame) -> str:
    """Why validation and training loss differ, stated for what these logs show (every run, after step 0)."""
    late = logs[logs["step"] > 0]
    per_run = late.groupby("run").agg(train=("loss", "median"), val=("val_loss", "median")).dropna()
    if len(per_run) and (per_run["val"] < per_run["train"]).all():
        return f"Validation loss is below training loss because it is {WHY_THEY_DIFFER}."
    lower = sorted(per_run.index[per_run["val"] < per_run["train"]])
    where = f" (validation below training in {len(lower)} of {len(per_run)} runs)" if len(per_run) else ""
    return f"Validation and training loss are not on the same footing{where}: validation loss is {WHY_THEY_DIFFER}."


def load_train_logs(profile: str, num_layers: int | None = None, backbone: str | None = None) -> pd.DataFrame:
    """Every run's ``train_log.csv`` with ``run, strategy, alpha, seed, num_layers, best_step`` attached.

    ``num_layers``: keep only runs of that depth (0 = full depth, notebook 03's runs); ``backbone``: only runs
    of that backbone (notebook 07's student runs share strategy, seed and depth 0 with notebook 03's).
    """
    parts = []
    for log_path in sorted((results_dir(profile) / "models").glob("*/train_log.csv")):
        folder = log_path.parent
        cfg_path = folder / "train_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        if num_layers is not None and int(cfg.get("num_layers", 0) or 0) != num_layers:
            continue
        if backbone is not None and cfg.get("backbone", backbone) != backbone:
            continue
        log = pd.read_csv(log_path)
        parts.append(log.assign(run=cfg.get("run_name", folder.name), strategy=cfg.get("strategy", "?"),
                                alpha=cfg.get("alpha"), seed=cfg.get("seed", 0),
                                num_layers=cfg.get("num_layers", 0), best_step=cfg.get("best_step", -1)))
    if not parts:
        return pd.DataFrame(columns=["step", "loss", "val_loss", "run", "strategy", "alpha", "seed", "best_step"])
    return pd.concat(parts, ignore_index=True)


def figure_loss_grid(logs: pd.DataFrame, title: str = ""):
    """Strategy (rows) x seed (columns): training loss per step (faint) with its running mean and the
    validation loss (markers) with the kept checkpoint, one shared y axis, legend outside the data."""
    if logs.empty:
        return empty_figure("Training and validation loss", "no train_log.csv found")
    logs = logs.assign(row=logs["strategy"].astype(str) + np.where(
        logs["strategy"] == "hybrid", " (alpha " + logs["alpha"].astype(str) + ")", ""))
    rows = ordered(logs["row"])
    seeds = sorted(logs["seed"].unique())
    fig, axes = plt.subplots(len(rows), len(seeds), figsize=(3.9 * len(seeds) + 2.6, 2.7 * len(rows) + 1.2),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    for i, row in enumerate(rows):
        for j, seed in enumerate(seeds):
            ax = axes[i][j]
            part = logs[(logs["row"] == row) & (logs["seed"] == seed)]
            strategy = row.split(" ")[0]
            c = color(strategy)
            if part.empty:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
            else:
                train = part[part["step"] > 0].dropna(subset=["loss"])
                val = part.dropna(subset=["val_loss"])
                window = max(1, len(train) // 10)
                ax.plot(train["step"], train["loss"], color=c, alpha=0.25, lw=0.8)
                ax.plot(train["step"], train["loss"].rolling(window, min_periods=1).mean(), color=c, lw=1.6)
                ax.plot(val["step"], val["val_loss"], "o--", color="k", ms=3.5, lw=1)
                best = int(part["best_step"].iloc[0])
                if best > 0:
                    ax.axvline(best, ls=":", c="0.4", lw=1)
            ax.set_title(f"{label(strategy)}{row[len(strategy):]}, seed {seed}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(rows) - 1:
                ax.set_xlabel("optimizer step")
            if j == 0:
                ax.set_ylabel("InfoNCE loss (nats per pair)")
    handles = [Line2D([], [], color="0.5", alpha=0.35, lw=0.8, label="training loss per step (colour = strategy)"),
               Line2D([], [], color="0.5", lw=1.6, label="training loss, running mean (1/10 of the steps)"),
               Line2D([], [], color="k", ls="--", marker="o", ms=3.5, label="validation loss (step 0 = untrained)"),
               Line2D([], [], color="0.4", ls=":", label="kept checkpoint (lowest validation loss)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle((title or "Training and validation loss per strategy and seed (shared y axis)") + "\n"
                 + textwrap.fill(loss_caption(logs), 130), fontsize=9)
    return fig


def run_folder_logs(folder: Path) -> pd.DataFrame:
    """The log of one run folder in the layout of :func:`load_train_logs` (for a single-run view)."""
    folder = Path(folder)
    cfg = json.loads((folder / "train_config.json").read_text())
    log = pd.read_csv(folder / "train_log.csv")
    return log.assign(run=cfg.get("run_name", folder.name), strategy=cfg["strategy"], alpha=cfg.get("alpha"),
                      seed=cfg.get("seed", 0), num_layers=cfg.get("num_layers", 0),
                      best_step=cfg.get("best_step", -1))


def conclusion(facts: dict, log: pd.DataFrame, per_batch: pd.DataFrame | None = None) -> list[str]:
    """Notebook 03's conclusion for one run in plain lines, from its ``train_config.json`` (``facts``),
    ``train_log.csv`` (``log``) and, optionally, :func:`lib.sampling.batch_summary` of its batches.

    "Still falling" compares the last validation point with the one before it, and the mean training
    loss of the last quarter of the steps with that of the quarter before (with 8 steps or more).
    """
    log = log.drop_duplicates("step", keep="last").sort_values("step")  # a resumed run logs steps again
    name = facts.get("run_name", "this run")
    steps = int(facts.get("steps", log["step"].max()))
    val = log.dropna(subset=["val_loss"]).sort_values("step")
    trained = val[val["step"] > 0]
    lines = [f"Run {name}: {facts.get('strategy', '?')} batches, {steps} steps of {facts.get('batch_size', '?')} "
             f"pairs."]
    if len(trained):
        best = trained.loc[trained["val_loss"].idxmin()]
        last = trained.iloc[-1]
        start = val[val["step"] == 0]["val_loss"]
        base = (f" (untrained {start.iloc[0]:.3f}, {best['val_loss'] / start.iloc[0] - 1:+.1%})"
                if len(start) else "")
        lines.append(f"Kept step {int(facts.get('best_step', best['step']))} of {steps}: best validation loss "
                     f"{best['val_loss']:.3f} at step {int(best['step'])}{base}; last validation loss "
                     f"{last['val_loss']:.3f} at step {int(last['step'])}.")
    else:
        lines.append(f"No validation loss after step 0: model/ is the last step ({steps}).")
    seconds = facts.get("train_seconds")
    if seconds is not None:
        rate = log.loc[log["step"] > 0, "pairs_per_s"].median()
        lines.append(f"Training took {float(seconds):.1f} s ({rate:.0f} pairs/s at the median; bf16 "
                     f"{'on' if facts.get('bf16_used') else 'off'}, {facts.get('device', '?')}).")
    parts = []
    if len(trained) >= 2:
        prev, last = trained["val_loss"].iloc[-2], trained["val_loss"].iloc[-1]
        parts.append(f"validation loss {'still falling' if last < prev else 'no longer falling'} "
                     f"({prev:.3f} at step {int(trained['step'].iloc[-2])} -> {last:.3f} at step "
                     f"{int(trained['step'].iloc[-1])})")
    elif len(trained) == 1 and len(val) > 1:
        first, last = val["val_loss"].iloc[0], trained["val_loss"].iloc[-1]
        parts.append(f"validation loss measured once after step 0 ({first:.3f} -> {last:.3f}), "
                     f"{'lower' if last < first else 'not lower'} than untrained")
    losses = log.loc[log["step"] > 0, "loss"].dropna().to_numpy()
    q = len(losses) // 4
    if q >= 2:
        before, end = float(losses[-2 * q:-q].mean()), float(losses[-q:].mean())
        parts.append(f"training loss {'still falling' if end < before else 'flat or rising'} (mean {before:.3f} -> "
                     f"{end:.3f} over the last two quarters of the steps)")
    elif len(losses):
        parts.append(f"training loss: {len(losses)} steps are too few to tell its trend (one batch's loss is noisy)")
    if parts:
        lines.append("At the end: " + "; ".join(parts) + ".")
    if per_batch is not None and len(per_batch):
        mono = int((per_batch["batch_kind"] == "mono").sum())
        alpha = facts.get("alpha")
        lines.append(f"Batches seen: {mono} of {len(per_batch)} monolingual ({mono / len(per_batch):.1%}"
                     + (f"; alpha = {float(alpha):g})." if alpha is not None else ")."))
    return lines
