"""Redraw a profile's figures from its result files, without the trained models.

    python -m lib.figures default            # every figure the CSVs of results/default/ can give
    python -m lib.figures default --data     # also notebooks 01-02's figures from the data folder
    python -m lib.figures smoke --only 04 06 # some notebooks only

Figures go to ``results/<profile>/figures/`` (and ``figures/`` for ``default``)
through :func:`lib.plots.savefig`. A figure whose inputs are missing is
listed with the reason and skipped (e.g. 03's loss grid needs the runs'
``train_log.csv``, 05's rank-distance distribution the per-question files).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from lib import (bias_report, data, data_report, efficiency_report, evaluation_report, paper,  # noqa: E402
                 sampling_report, scaling_report, training_data, training_report)
from lib.backbones import load_encoder  # noqa: E402
from lib.data_files import LANGS  # noqa: E402
from lib.models import zero_shot_name  # noqa: E402
from lib.notebook import committed_defaults, profile_values  # noqa: E402
from lib.paths import results_dir  # noqa: E402
from lib.plots import savefig  # noqa: E402
from lib.sampling import BatchSampler, batches_frame  # noqa: E402
from lib.settings import comma_list  # noqa: E402
from lib.strategies import trained_names  # noqa: E402

MAIN_LAYERS_NOTE = "rows of the full-depth backbone (notebook 04's models)"


class Missing(Exception):
    """An input of a figure is not there; the message says which."""


def _path(profile: str, name: str) -> Path:
    """``results/<profile>/<name>``; Missing when absent."""
    path = results_dir(profile) / name
    if not path.exists():
        raise Missing(f"{path} not found")
    return path


def _csv(profile: str, name: str) -> pd.DataFrame:
    return pd.read_csv(_path(profile, name))


def _notebook_values(profile: str, notebook: str) -> dict:
    """The parameters a run of ``notebook`` on ``profile`` gets (profile values over the notebook's defaults)."""
    values = {k: v.get("default") for k, v in committed_defaults(notebook).items()}
    values.update(profile_values(profile, notebook)[1])
    return values


def _main_metrics(profile: str) -> tuple[pd.DataFrame, list[str]]:
    """metrics.csv rows of notebook 04's backbone depth (the zero-shot model of its backbone) and its
    datasets in the notebook's order."""
    metrics = _csv(profile, "metrics.csv")
    values = _notebook_values(profile, "04_evaluation")
    zero = zero_shot_name(values.get("backbone", "embedded"), values.get("num_layers", 0))
    layers = metrics.loc[metrics["model"] == zero, "layers"]
    if layers.empty:
        raise Missing(f"metrics.csv has no row of {zero}")
    datasets = comma_list(values.get("datasets", "xquad_r,mlqa_r"))
    metrics = metrics[(metrics["layers"] == layers.iloc[0]) & metrics["dataset"].isin(datasets)
                      & metrics["setting"].isin(["mono", "cross", "multi"])]
    return metrics, [d for d in datasets if d in set(metrics["dataset"])]


# --------------------------------------------------------------------------
# One function per notebook: yields (name, figure-making callable)


def figures_01(profile: str):
    values = _notebook_values(profile, "01_data_preparation")
    summary = _csv(profile, "data_summary.csv")
    pairs = training_data.load_training_pairs()
    yield "01_language_pairs", lambda: data_report.figure_language_pairs(summary, pairs)
    yield "01_parallelism", lambda: data_report.figure_parallelism(training_data.parallelism())

    def lengths():
        tokenizer = load_encoder(values.get("backbone", "embedded")).tokenizer
        return data_report.figure_token_lengths(
            data.token_lengths(training_data.text_samples(max_items=values.get("max_items", 0)), tokenizer))
    yield "01_token_lengths", lengths


def sampled_frames(profile: str) -> tuple[dict, pd.DataFrame, list, dict]:
    """Notebook 02's sampled batches: read from ``results/<profile>/sampling/`` when there, else drawn again
    with the profile's parameters (sampling is deterministic given the seed)."""
    v = _notebook_values(profile, "02_batch_sampling")
    pairs = training_data.load_training_pairs(max_items=v["max_items"])
    samplers = {n: BatchSampler(pairs, n, v["batch_size"], alpha=v["alpha"], seed=v["seed"],
                                dataset_choice=v["dataset_choice"]) for n in trained_names()}
    folder = results_dir(profile) / "sampling"
    frames = {}
    for name, sampler in samplers.items():
        path = folder / f"batches_{name}.csv"
        frames[name] = (pd.read_csv(path, dtype={"item_id": str}) if path.exists()
                        else batches_frame(pairs, sampler.batches(v["steps"])))
    langs = sorted(set(pairs["query_lang"]) | set(pairs["doc_lang"]))
    probs = samplers.get("hybrid", list(samplers.values())[-1]).dataset_probabilities()
    return frames, probs, langs, v


def figures_02(profile: str):
    frames, probs, langs, v = sampled_frames(profile)
    yield "02_language_heatmaps", lambda: sampling_report.figure_language_heatmaps(frames, langs, v["alpha"],
                                                                                   v["steps"], v["batch_size"])
    yield "02_mono_share", lambda: sampling_report.figure_mono_share(frames, v["alpha"])
    yield "02_languages_per_batch", lambda: sampling_report.figure_languages_per_batch(frames)
    yield "02_dataset_shares", lambda: sampling_report.figure_dataset_shares(
        sampling_report.dataset_share_table(frames, probs))


def figures_03(profile: str):
    values = _notebook_values(profile, "03_training")
    logs = training_report.load_train_logs(profile, num_layers=values.get("num_layers", 0),
                                           backbone=values.get("backbone", "embedded"))
    if logs.empty:
        raise Missing(f"no train_log.csv under {results_dir(profile) / 'models'} (models are not kept in git)")
    yield "03_loss_grid", lambda: training_report.figure_loss_grid(logs)


def figures_04(profile: str):
    metrics, datasets = _main_metrics(profile)
    comparisons = paper.read_comparisons(_path(profile, "comparisons.csv"))
    yield "04_map_by_strategy", lambda: evaluation_report.figure_gaps(comparisons, metrics, datasets=datasets)
    if "xquad_r" in datasets:
        yield "04_seen_unseen", lambda: evaluation_report.figure_seen_unseen(comparisons, "xquad_r")
    limit = evaluation_report.heatmap_diff_limit(metrics, datasets)
    for d in datasets:
        yield f"04_heatmaps_{d}", (lambda d=d: evaluation_report.figure_heatmaps(metrics, d, limit))


def figures_05(profile: str):
    summary = _csv(profile, "05_bias_summary.csv")
    datasets = list(dict.fromkeys(summary["dataset"]))
    yield "05_top10_same_language", lambda: bias_report.figure_top10_same_language(
        summary, {d: len(LANGS[d]) for d in datasets})
    yield "05_own_vs_other_rank", lambda: bias_report.figure_own_vs_other(summary)


def figures_06(profile: str):
    rows = _csv(profile, "efficiency.csv")
    datasets = [d for d in dict.fromkeys(rows["dataset"]) if d.startswith("dureader")] + \
               [d for d in ("xquad_r",) if d in set(rows["dataset"])]
    yield "06_encoding_cost", lambda: efficiency_report.figure_encoding(rows)
    yield "06_pareto_fronts", lambda: efficiency_report.figure_fronts(rows, efficiency_report.default_panels(datasets))
    yield "06_search_knobs", lambda: efficiency_report.figure_knobs(rows, datasets)
    if "xquad_r" in datasets:
        yield "06_language_clustering", lambda: efficiency_report.figure_clustering(rows, "xquad_r")


def figures_07(profile: str):
    values = _notebook_values(profile, "07_model_size_scaling")
    table = _csv(profile, "scaling.csv")
    run_times_path = results_dir(profile) / "run_times.csv"
    run_times = pd.read_csv(run_times_path) if run_times_path.exists() else None
    yield "07_size_axis", lambda: scaling_report.figure_size_axis(table, values.get("threads"))
    yield "07_training_cost", lambda: scaling_report.figure_training_cost(table, run_times)
    for short, title, metric, groups in (("mlqa", "MLQARetrieval", "nDCG@10", ("same", "cross", "all")),
                                         ("xquad", "XQuAD-R", "mAP", ("mono", "cross", "multi"))):
        est = results_dir(profile) / f"07_{short}_estimates.csv"
        if est.exists():
            yield f"07_{short}_vs_size", (lambda est=est, title=title, metric=metric, groups=groups:
                                          scaling_report.plot_groups(pd.read_csv(est), groups, metric, title))
        gap = results_dir(profile) / f"07_{short}_gaps.csv"
        if gap.exists():
            yield f"07_{short}_gaps", (lambda gap=gap, title=title, metric=metric, groups=groups:
                                       scaling_report.plot_groups(pd.read_csv(gap), groups, f"{metric} difference",
                                                                  title, gaps=True, margin=0.01))


NOTEBOOKS: dict[str, Callable] = {"01": figures_01, "02": figures_02, "03": figures_03, "04": figures_04,
                                  "05": figures_05, "06": figures_06, "07": figures_07}
DATA_NOTEBOOKS = ("01", "02")  # drawn from the data folder, not from result files: only with --data
NOT_FROM_CSV = {"05_rank_distance_distribution": "needs the per-question files (results/<profile>/per_query/)"}


def redraw(profile: str, only=None, with_data: bool = False, log=print) -> tuple[list[str], list[str]]:
    """Redraw the figures; returns (written names, 'name or notebook: reason' for the skipped ones)."""
    done, skipped = [], []
    for key, make in NOTEBOOKS.items():
        if only and key not in only:
            continue
        if key in DATA_NOTEBOOKS and not with_data:
            skipped.append(f"{key}: drawn from the data folder; add --data")
            continue
        try:
            for name, draw in make(profile):
                fig = draw()
                savefig(fig, name, profile, close=True)
                done.append(name)
                log(f"wrote {name}")
        except Missing as exc:
            skipped.append(f"{key}: {exc}")
            log(f"skipped {key}: {exc}")
    if not only or "05" in only:
        skipped += [f"{k}: {v}" for k, v in NOT_FROM_CSV.items()]
    plt.close("all")
    return done, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", nargs="?", default="default")
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers (01 ... 07)")
    parser.add_argument("--data", action="store_true", help="also notebooks 01-02 (needs the data folder)")
    args = parser.parse_args(argv)
    done, skipped = redraw(args.profile, args.only, args.data)
    print(f"{len(done)} figures written for profile {args.profile}")
    for line in skipped:
        print("not drawn:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
