"""The smoke profile's key numbers and their stored expected values (tests/expectations/smoke.json).

``./run_all.sh test`` rebuilds ``results/smoke`` by running every notebook
(nbval), and ``tests/test_smoke_expectations.py`` (run after the notebooks)
compares the key numbers below with the stored ones. A change of results,
wanted or not, then fails CI until the expectation is updated on purpose:

    python tests/smoke_expectations.py --update    # after ./run_all.sh test or ./run_all.sh smoke

Tolerances (absolute) allow for the machines CI runs on: bf16 autocast on
CPUs with bf16 units, fp32 elsewhere, so trained models differ in the last
digits; a code change that moves a result moves it by far more.

- counts (rows of data_summary, tables' row counts): exact;
- mAP, nDCG@10, recall and other scores in [0, 1] (``score``): 0.02;
- estimates of differences (comparisons, gaps; ``diff``): 0.02;
- rank distance (``rank``): 0.5 ranks;
- quality of an approximate index (IVF, HNSW, PQ, scalar quantization;
  ``approx``): 0.1. Its k-means cells and graph follow the last bits of the
  embeddings, and the smoke set's 30 DuReader questions move a score in steps
  of 1/30 when one question changes cell; a broken index still falls far
  outside.

Timings, speeds and memory are measured, not computed, and are not compared.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "expectations" / "smoke.json"
TOLERANCE = {"count": 0.0, "score": 0.02, "diff": 0.02, "rank": 0.5, "approx": 0.1}
APPROXIMATE = ("ivf", "hnsw", "pq", "sq")  # efficiency.csv's approximate index families
MEASURED = ("per_s", "_ms", "seconds", "latency", "qps", "rss", "mib", "build_s", "speed")


def _macro(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    return frame.groupby(keys)["value"].mean()


def key_numbers(folder: Path) -> dict[str, tuple[str, float]]:
    """name -> (kind, value) for one results folder."""
    out: dict[str, tuple[str, float]] = {}

    def put(name, kind, value):
        out[name] = (kind, float(value))

    data = pd.read_csv(folder / "data_summary.csv")
    for (dataset, split, role), n in data.groupby(["dataset", "split", "role"])["count"].sum().items():
        put(f"data/{dataset}/{split}/{role}", "count", n)
    metrics = pd.read_csv(folder / "metrics.csv")
    put("metrics/rows", "count", len(metrics))
    lareqa = metrics[metrics["metric"].isin(["map", "rank_distance"]) & (metrics["n_queries"] > 0)]
    for (model, dataset, setting, metric), v in _macro(lareqa, ["model", "dataset", "setting", "metric"]).items():
        put(f"metrics/{model}/{dataset}/{setting}/{metric}", "rank" if metric == "rank_distance" else "score", v)
    mlqa = metrics[(metrics["dataset"] == "mlqa_retrieval") & (metrics["metric"] == "ndcg_at_10")
                   & (metrics["setting"].isin(["same", "cross", "all"]))]
    for (model, setting), v in _macro(mlqa, ["model", "setting"]).items():
        put(f"mlqa_retrieval/{model}/{setting}/ndcg_at_10", "score", v)
    comp = pd.read_csv(folder / "comparisons.csv")
    put("comparisons/rows", "count", len(comp))
    for r in comp.itertuples():
        kind = "rank" if r.metric == "rank_distance" else "diff"
        put(f"comparisons/{r.claim}/{r.subset}/{r.dataset}/{r.setting}/{r.metric}/{r.a}-{r.b}", kind, r.estimate)
    eff = pd.read_csv(folder / "efficiency.csv")
    computed = eff[~eff["value_name"].str.lower().str.contains("|".join(MEASURED))]
    computed = computed[computed["value_name"].str.contains("recall|overlap|map|mrr|ndcg|hit", case=False)]
    for r in computed.itertuples():
        put(f"efficiency/{r.model}/{r.dataset}/{r.index}/{r.param}/{r.value_name}",
            "approx" if r.index in APPROXIMATE else "score", r.value)
    for name in ("07_mlqa_estimates.csv", "07_mlqa_gaps.csv"):
        path = folder / name
        if path.is_file():
            table = pd.read_csv(path)
            put(f"{name}/rows", "count", len(table))
            label = "model" if "model" in table else "model_a"
            for r in table.to_dict("records"):
                who = r[label] if label == "model" else f"{r['model_a']}-{r['model_b']}"
                put(f"{name}/{who}/{r['group']}", "score" if label == "model" else "diff", r["estimate"])
    return out


def compare(expected: dict, got: dict[str, tuple[str, float]]) -> list[str]:
    """Every key number outside its tolerance, missing, or new, as readable lines."""
    problems = []
    for name, (kind, want) in sorted(expected.items()):
        if name not in got:
            problems.append(f"{name}: expected {want:g}, missing now")
            continue
        value = got[name][1]
        tol = TOLERANCE[kind]
        if not abs(value - want) <= tol:
            problems.append(f"{name}: expected {want:.4f} +- {tol:g} ({kind}), got {value:.4f}")
    for name in sorted(set(got) - set(expected)):
        problems.append(f"{name}: new key number {got[name][1]:.4f}, not in the expectations")
    return problems


def load_expected(path: Path = EXPECTED) -> dict:
    return {k: tuple(v) for k, v in json.loads(path.read_text())["numbers"].items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true", help="store the current results/smoke numbers")
    ap.add_argument("--folder", default=str(ROOT / "results" / "smoke"))
    args = ap.parse_args(argv)
    got = key_numbers(Path(args.folder))
    if args.update:
        EXPECTED.parent.mkdir(parents=True, exist_ok=True)
        body = {"note": "key numbers of results/smoke; regenerate with python tests/smoke_expectations.py --update",
                "tolerance": TOLERANCE, "numbers": {k: list(v) for k, v in sorted(got.items())}}
        EXPECTED.write_text(json.dumps(body, indent=1) + "\n")
        print(f"stored {len(got)} key numbers in {EXPECTED}")
        return 0
    problems = compare(load_expected(), got)
    print("\n".join(problems) or f"all {len(got)} key numbers within tolerance")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
