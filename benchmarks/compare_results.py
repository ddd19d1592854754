"""Compare the result tables of two results folders (e.g. a profile's run before and after a refactoring).

    python benchmarks/compare_results.py BEFORE_DIR AFTER_DIR

For ``metrics.csv``, ``scaling.csv`` and ``efficiency.csv``: rows present in
only one folder, and the largest absolute difference of the values of rows
present in both. Speeds, times and memory are measured, not computed, and
differ from run to run: they are listed apart and not counted as differences.
Exit code 1 when a computed value differs by more than ``--tol`` or a row is
missing on one side.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

TABLES = {  # file -> (key columns, value columns or None for 'value')
    "metrics.csv": (["model", "dataset", "setting", "query_lang", "doc_lang", "metric"], ["value", "n_queries"]),
    "efficiency.csv": (["model", "dataset", "index", "param", "value_name"], ["value"]),
    "scaling.csv": (["model"], None),
}
MEASURED = ("per_s", "_ms", "_s_", "seconds", "latency", "qps", "rss", "mib", "build_s", "train_s", "time", "speed")


def measured(name: str) -> bool:
    name = str(name).lower()
    return any(m in name for m in MEASURED) or name.endswith("_s")


def compare(before: Path, after: Path, tol: float) -> int:
    bad = 0
    for name, (keys, values) in TABLES.items():
        a_path, b_path = before / name, after / name
        if not (a_path.is_file() and b_path.is_file()):
            print(f"{name}: missing in {'before' if not a_path.is_file() else 'after'}; skipped")
            continue
        a = pd.read_csv(a_path, dtype={"param": str}, keep_default_na=False, na_values=[""])
        b = pd.read_csv(b_path, dtype={"param": str}, keep_default_na=False, na_values=[""])
        cols = values or [c for c in a.columns if c not in keys and pd.api.types.is_numeric_dtype(a[c])]
        m = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
        only = m["_merge"].value_counts().to_dict()
        both = m[m["_merge"] == "both"]
        computed, timed = 0.0, 0.0
        for c in cols:
            if c not in a.columns:
                continue
            diff = (pd.to_numeric(both[f"{c}_a"], errors="coerce") - pd.to_numeric(both[f"{c}_b"], errors="coerce")).abs()
            same_nan = both[f"{c}_a"].isna() & both[f"{c}_b"].isna()
            diff = diff.where(~same_nan, 0.0).fillna(float("inf"))
            if name == "efficiency.csv":
                is_timed = both["value_name"].map(measured) | both["index"].eq("encoder")
            else:
                is_timed = pd.Series(measured(c), index=both.index)
            computed = max(computed, float(diff[~is_timed].max()) if (~is_timed).any() else 0.0)
            timed = max(timed, float(diff[is_timed].max()) if is_timed.any() else 0.0)
        missing = only.get("left_only", 0) + only.get("right_only", 0)
        ok = computed <= tol and missing == 0
        bad += not ok
        print(f"{name}: {len(both)} rows in both, {only.get('left_only', 0)} only before, {only.get('right_only', 0)} "
              f"only after; largest difference of computed values {computed:.3g} ({'same' if ok else 'DIFFERENT'}); "
              f"measured values (speed, time, memory) differ by up to {timed:.3g}, as runs do")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    return compare(args.before, args.after, args.tol)


if __name__ == "__main__":
    sys.exit(main())
