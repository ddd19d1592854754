"""Latency and throughput of the faiss index types of notebook 06, on DuReader-demo-sized embeddings.

    python benchmarks/bench_search.py                         # 11,659 clustered random vectors, 384 dims
    python benchmarks/bench_search.py --n-docs 2000 --repeats 1   # quick check
    python benchmarks/bench_search.py --from-cache results/default/embeddings/zero-shot/dureader_demo

Without ``--from-cache`` the passages are random vectors around a few
hundred random centres (so IVF cells and HNSW graphs have structure to
use) and the queries are noisy copies of random passages. With it, the
cached ``passage.npy`` / ``query.npy`` of one model and dataset (written by
``lib.retrieval.encode_cached``) are used. Every index of
``lib.efficiency.default_specs`` is built and timed with
``lib.efficiency.sweep`` (same code as the notebook): build time, serialized
bytes per vector, single-query latency (p50 / p95 over queries of the
per-query median over repeats), batched throughput, and overlap@10 with
the exact search. Thread counts are fixed with ``--threads``. The table is
printed and written to ``results/<profile>/benchmarks/bench_search.csv``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lib import efficiency as eff  # noqa: E402
from lib import indexes as idx  # noqa: E402
from lib import efficiency_report as report  # noqa: E402
from lib.errors import ConfigError  # noqa: E402
from lib.machine import cpu_model  # noqa: E402
from lib.paths import atomic_write, results_dir  # noqa: E402

DUREADER_DEMO_DOCS = 11_659  # paragraphs in the DuReader 2.0 demo pool
COLUMNS = ["index", "param", "build_s", "latency_ms_p50", "latency_ms_p95", "batch_qps_p50", "bytes_per_vector",
           eff.OVERLAP]


def random_embeddings(n_docs: int, n_queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``sqrt(n_docs)`` random centres, and queries = noisy copies of random docs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, int(np.sqrt(n_docs))), dim)).astype(np.float32)
    docs = centres[rng.integers(0, len(centres), n_docs)] + 0.7 * rng.standard_normal((n_docs, dim))
    queries = docs[rng.choice(n_docs, n_queries)] + 0.3 * rng.standard_normal((n_queries, dim))
    return idx.truncate(queries.astype(np.float32), dim), idx.truncate(docs.astype(np.float32), dim)


def cached_embeddings(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    files = [folder / "query.npy", folder / "passage.npy"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"--from-cache {folder}: missing {missing}; point to "
                          "results/<profile>/embeddings/<model>/<dataset>/ written by notebook 06")
    return np.load(files[0]), np.load(files[1])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-docs", type=int, default=DUREADER_DEMO_DOCS, help="random passages")
    ap.add_argument("--n-queries", type=int, default=200, help="random queries")
    ap.add_argument("--dim", type=int, default=384, help="embedding width of the random vectors")
    ap.add_argument("--from-cache", type=Path, default=None, help="folder with query.npy and passage.npy")
    ap.add_argument("--families", default=",".join(idx.FAMILIES), help="index families, comma-separated")
    ap.add_argument("--threads", type=int, default=2, help="faiss (and torch) threads")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats")
    ap.add_argument("--n-latency", type=int, default=100, help="queries timed one at a time")
    ap.add_argument("--profile", default="default", help="results/<profile>/benchmarks/ receives the CSV")
    args = ap.parse_args(argv)

    threads = eff.set_threads(args.threads)
    if args.from_cache:
        queries, docs = cached_embeddings(args.from_cache)
        source = str(args.from_cache)
    else:
        queries, docs = random_embeddings(args.n_docs, args.n_queries, args.dim)
        source = "random clustered vectors, seed 0"
    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    specs = idx.default_specs(len(docs), docs.shape[1], families)
    print(f"{len(docs)} passages x {docs.shape[1]} dims, {len(queries)} queries ({source}); {threads}; "
          f"{cpu_model()}")
    start = time.perf_counter()
    rows = eff.sweep(queries, docs, [str(i) for i in range(len(queries))], [str(i) for i in range(len(docs))],
                     pd.DataFrame(columns=["qid", "doc_id"]), specs, metrics=(), n_latency=args.n_latency,
                     repeats=args.repeats, progress=True)
    table = report.points(rows.assign(model="bench", strategy="", dataset="bench"), "bench")[COLUMNS]
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.precision", 4):
        print(table.to_string(index=False))
    print(f"total {time.perf_counter() - start:.1f} s")
    out = results_dir(args.profile) / "benchmarks" / "bench_search.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        table.assign(n_docs=len(docs), dim=docs.shape[1], threads=args.threads, source=source).to_csv(tmp, index=False)
    print(f"written to {out}")
    return table


if __name__ == "__main__":
    main()
