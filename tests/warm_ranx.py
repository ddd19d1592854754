"""Compile ranx's numba kernels into their on-disk cache, in the background of ``./run_all.sh test``.

ranx compiles each metric kernel the first time a process uses it and keeps
the machine code beside its sources (numba ``cache=True``). In a fresh
environment that first use costs about 45 s of one core, paid inside the test
that happens to come first (the ranx comparisons of tests/test_metrics.py, the
evaluation tests, notebook 04). ``./run_all.sh test`` starts this script
beside pytest, so the compiling runs on the core pytest leaves idle and the
tests find the kernels cached. Every call below is one the tests or the
study make, with the same argument types: numba compiles per type signature.

It changes no result: when it has not finished, a test compiles what it needs
itself, as it would without it. Run alone: ``python tests/warm_ranx.py``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> float:
    from ranx import Qrels, Run, evaluate

    from lib import metrics as M
    from lib.indexes import DUREADER_METRICS, labelled_metrics

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    ranks = [np.sort(rng.choice(np.arange(1, 41), size=int(n), replace=False)) for n in rng.integers(1, 4, 12)]
    for threads in (1, 2):  # ranx has a serial and a parallel kernel per metric
        M.topk_metrics(ranks, threads=threads)
    ids = np.stack([rng.permutation(40)[:10] for _ in range(6)])
    qrels = pd.DataFrame({"qid": [f"q{i}" for i in range(6)], "doc_id": [f"d{i}" for i in range(6)]})
    labelled_metrics(ids, np.sort(rng.random((6, 10)))[:, ::-1], [f"q{i}" for i in range(6)],
                     [f"d{i}" for i in range(40)], qrels, DUREADER_METRICS)
    # the dictionary inputs of the comparisons with ranx in tests/test_metrics.py
    dict_qrels = Qrels({f"q{i:03d}": {f"d{j}": 1 for j in (i, i + 1)} for i in range(8)})
    dict_run = Run({f"q{i:03d}": {f"d{j}": float(rng.random()) for j in range(20)} for i in range(8)})
    evaluate(dict_qrels, dict_run, "map@20", return_mean=False, threads=1)
    evaluate(dict_qrels, dict_run, list(M.TOPK_METRICS.values()), return_mean=False, threads=1)
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"ranx kernels compiled or found cached in {main():.1f} s")
