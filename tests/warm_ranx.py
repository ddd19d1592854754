"""Compile the numba kernels of ranx and lib.retrieval into their on-disk cache, beside ``./run_all.sh test``.

ranx compiles each metric kernel the first time a process uses it and keeps
the machine code beside its sources (numba ``cache=True``). In a fresh
environment that first use costs about a minute of one core, paid inside the test
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
    from lib.retrieval import relevant_ranks

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    ranks = [np.sort(rng.choice(np.arange(1, 41), size=int(n), replace=False)) for n in rng.integers(1, 4, 12)]
    unit = rng.standard_normal((60, 16)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    relevant_ranks(unit[:6], unit[6:], [[0, 1]] * 6)  # the project's own numba kernel (lib.retrieval)
    for threads in (1, 2):  # ranx has a serial and a parallel kernel per metric
        M.topk_metrics(ranks, threads=threads)
    ids = np.stack([rng.permutation(40)[:10] for _ in range(6)])
    judged = pd.DataFrame({"qid": [f"q{i}" for i in range(6)], "doc_id": [f"d{i}" for i in range(6)]})
    labelled_metrics(ids, np.sort(rng.random((6, 10)))[:, ::-1], [f"q{i}" for i in range(6)],
                     [f"d{i}" for i in range(40)], judged, DUREADER_METRICS)
    # the dictionary inputs of the comparisons with ranx in tests/test_metrics.py: ranx stores document ids
    # as fixed-width strings, so the kernels are compiled per id width (pools of 40 and 120: 3 and 4 chars)
    for n_pool in (40, 120):
        qrels = Qrels({f"q{i:03d}": {f"d{j}": 1 for j in (i, n_pool - 1 - i)} for i in range(8)})
        run = Run({f"q{i:03d}": {f"d{j}": float(rng.random()) for j in range(n_pool)} for i in range(8)})
        evaluate(qrels, run, f"map@{n_pool}", return_mean=False, threads=1)
        evaluate(qrels, run, list(M.TOPK_METRICS.values()), return_mean=False, threads=1)
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"numba kernels compiled or found cached in {main():.1f} s")
