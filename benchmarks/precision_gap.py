"""Same answers on every CPU: a model trained and evaluated in fp32 against the same run in bf16.

    ./run_all.sh fp32 --only 01 02 03          # the seed-0 hybrid run, trained in fp32 (configs/fp32.yaml)
    python benchmarks/precision_gap.py         # evaluate it in fp32; compare with the default run

The default profile trains and evaluates in bf16 autocast where the CPU has
it; a machine without bf16 runs the same profile in fp32. This script
evaluates the fp32 profile's run (and the untuned backbone) in fp32 on
XQuAD-R and MLQA-R (into ``results/fp32/``), reads the default run's bf16
numbers for the same run name from ``results/default/metrics.csv``, and
prints, per dataset and setting, macro mAP and mean rank distance in both
precisions, their difference, and the seed spread of the run's arm in the
default run (standard deviation and range over its seeds): a precision gap
well inside the seed spread cannot change a verdict. It also says whether
both runs trained on the same batches. Output: stdout (keep it under
``benchmarks/results/``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from lib import paper_tables as tables  # noqa: E402
from lib.errors import DataError  # noqa: E402
from lib.evaluation import evaluate_model  # noqa: E402
from lib.machine import cpu_model  # noqa: E402
from lib.models import arm_name, zero_shot_name  # noqa: E402
from lib.paths import results_dir  # noqa: E402
from lib.timing import precision  # noqa: E402

DATASETS = ("xquad_r", "mlqa_r")
QUANTITIES = (("mono", "map"), ("cross", "map"), ("multi", "map"), ("multi", "rank_distance"))


def macro(metrics: pd.DataFrame) -> pd.DataFrame:
    """Macro value per (model, dataset, setting, metric) for the quantities compared here."""
    m = tables.macro_average(metrics)
    keep = pd.Series(False, index=m.index)
    for setting, metric in QUANTITIES:
        keep |= (m["setting"] == setting) & (m["metric"] == metric)
    return m[keep & m["dataset"].isin(DATASETS)]


def compare(bf16: pd.DataFrame, fp32: pd.DataFrame, run: str) -> pd.DataFrame:
    """One row per (dataset, setting, metric) and model: bf16, fp32, their difference, and the seed spread
    of the run's arm in ``bf16`` (the default run's every seed)."""
    arm = arm_name(run)
    seeds = bf16[[arm_name(m) == arm for m in bf16["model"]]]
    spread = seeds.groupby(["dataset", "setting", "metric"])["value"].agg(
        seed_sd="std", seed_min="min", seed_max="max", n_seeds="count")
    rows = []
    for model in (zero_shot_name(), run):
        a = bf16[bf16["model"] == model].set_index(["dataset", "setting", "metric"])["value"]
        b = fp32[fp32["model"] == model].set_index(["dataset", "setting", "metric"])["value"]
        if a.empty or b.empty:
            raise DataError(f"no {'bf16' if a.empty else 'fp32'} metrics for {model}: run the default profile's "
                            "notebook 04 and this script's evaluation first")
        for key in a.index.intersection(b.index):
            row = {"model": model, "dataset": key[0], "setting": key[1], "metric": key[2], "bf16": a[key],
                   "fp32": b[key], "diff": b[key] - a[key]}
            if model == run and key in spread.index:
                row.update(spread.loc[key].to_dict())
            rows.append(row)
    return pd.DataFrame(rows)


def same_batches(run: str, reference: str, other: str) -> bool | None:
    paths = [results_dir(p) / "models" / run / "batches.csv" for p in (reference, other)]
    if not all(p.is_file() for p in paths):
        return None
    return pd.read_csv(paths[0]).equals(pd.read_csv(paths[1]))


def loss_curves(run: str, reference: str, other: str) -> str | None:
    """The two runs' training losses step by step (``train_log.csv``, kept in git where the batch plan is not):
    the first step's loss (same weights, so equal up to precision when the batch is the same) and the
    correlation of the step-to-step changes (the trend removed; near 0 for unrelated batches)."""
    paths = [results_dir(p) / "models" / run / "train_log.csv" for p in (reference, other)]
    if not all(p.is_file() for p in paths):
        return None
    a, b = (pd.read_csv(p).dropna(subset=["loss"]).set_index("step")["loss"] for p in paths)
    both = pd.concat([a.rename("ref"), b.rename("other")], axis=1, join="inner").sort_index()
    if len(both) < 3:
        return None
    first = both.iloc[0]
    changes = both.diff().dropna()
    early = changes.iloc[:10]
    return (f"step {int(both.index[0])} loss {first['ref']:.4f} ({reference}) vs {first['other']:.4f} ({other}); "
            f"correlation of step-to-step loss changes: {early['ref'].corr(early['other']):.3f} over the first "
            f"{len(early)} steps, {changes['ref'].corr(changes['other']):.3f} over all {len(changes)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="hybrid_a0.5_s0", help="run name, trained in both profiles")
    ap.add_argument("--reference", default="default", help="profile with the bf16 run and its arm's seeds")
    ap.add_argument("--profile", default="fp32", help="profile with the fp32 run; its evaluations land there")
    args = ap.parse_args(argv)
    run_dir = results_dir(args.profile) / "models" / args.run
    if not (run_dir / "train_config.json").is_file():
        raise SystemExit(f"{run_dir} has no finished run: ./run_all.sh {args.profile} --only 01 02 03 first")
    reference = results_dir(args.reference) / "metrics.csv"
    if not reference.is_file():
        raise SystemExit(f"{reference} is missing: run ./run_all.sh {args.reference} --only 04 first")
    print(f"CPU: {cpu_model()}; fp32 evaluation of {run_dir} and the untuned backbone, against "
          f"{reference} (bf16 autocast)")
    rows = []
    with precision("fp32"):
        for dataset in DATASETS:
            rows.append(evaluate_model("embedded", zero_shot_name(), dataset, args.profile, progress=True))
            rows.append(evaluate_model(str(run_dir), args.run, dataset, args.profile, progress=True))
    fp32 = macro(pd.concat(rows, ignore_index=True))
    bf16 = macro(pd.read_csv(reference))
    table = compare(bf16, fp32, args.run)
    batches = same_batches(args.run, args.reference, args.profile)
    print(f"same training batches in both runs: {'unknown' if batches is None else 'yes' if batches else 'NO'}"
          + (" (batch plans compared)" if batches is not None else ""))
    curves = loss_curves(args.run, args.reference, args.profile)
    if curves:
        print(f"training losses: {curves}")
    pd.set_option("display.width", 200)
    print(table.round(4).to_string(index=False))
    trained = table[(table["model"] == args.run) & table["seed_sd"].notna()]
    if len(trained):
        ratio = (trained["diff"].abs() / trained["seed_sd"]).max()
        inside = ((trained["fp32"] >= trained["seed_min"]) & (trained["fp32"] <= trained["seed_max"])).sum()
        print(f"largest |fp32 - bf16| / seed sd of {args.run}'s arm: {ratio:.2f}; fp32 value inside the arm's "
              f"seed range in {inside} of {len(trained)} quantities (n_seeds {int(trained['n_seeds'].max())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
