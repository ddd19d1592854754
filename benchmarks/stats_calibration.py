"""Coverage, false rejections and verdicts of the study's statistics on simulated studies (lib.stats_calibration).

    python benchmarks/stats_calibration.py [--replicates 500]

Scenarios: 3 or 5 training seeds per strategy, seed-to-seed spread 0 to
0.02 (the default run's seed standard deviations are 0.001-0.010 mAP),
per-question noise 0.05 (0.03 for the verdict scenarios), 100 items x 3
languages, true differences 0, 0.02 and 0.03; margin 0.01. Prints one row
per scenario and method.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from lib.stats_calibration import calibrate  # noqa: E402

SCENARIOS = [
    {"n_seeds": 3, "sd_seed": 0.0, "true_diff": 0.0},
    {"n_seeds": 3, "sd_seed": 0.01, "true_diff": 0.0},
    {"n_seeds": 5, "sd_seed": 0.02, "true_diff": 0.0},
    {"n_seeds": 3, "sd_seed": 0.01, "true_diff": 0.02},
    {"n_seeds": 5, "sd_seed": 0.002, "true_diff": 0.0, "sd_noise": 0.03},
    {"n_seeds": 5, "sd_seed": 0.002, "true_diff": 0.03, "sd_noise": 0.03},
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicates", type=int, default=500)
    ap.add_argument("--n-bootstrap", type=int, default=500)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    table = calibrate(SCENARIOS, replicates=args.replicates, n_bootstrap=args.n_bootstrap)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 20)
    print(table.fillna({"sd_noise": 0.05}).round(3).to_string(index=False))
    print(f"{args.replicates} simulated studies per scenario, {args.n_bootstrap} bootstrap replicates; "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
