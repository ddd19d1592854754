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


def load_train_logs(profile: str, num_layers: int | None = None) -> pd.DataFrame:
    """Every run's ``train_log.csv`` with ``run, strategy, alpha, seed, num_layers, best_step`` attached.

    ``num_layers``: keep only runs of that depth (0 = full depth, notebook 03's runs).
    """
    parts = []
    for log_path in sorted((results_dir(profile) / "models").glob("*/train_log.csv")):
        folder = log_path.parent
        cfg_path = folder / "train_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        if num_layers is not None and int(cfg.get("num_layers", 0) or 0) != num_layers:
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
