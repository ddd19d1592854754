"""Untuned MLQARetrieval nDCG@10 of a distilled student (and, on capped subsets, the truncated copy of the same size).

    python -m lib.distill --layers 3 --steps 1200 --max-texts 20000  # makes $HBT_CACHE_DIR/models/distilled-L3
    python benchmarks/student_quality.py --layers 3                   # all 49 subsets, every question
    python benchmarks/student_quality.py --layers 3 --items 50        # capped: student and truncated copy

Prints the mean nDCG@10 over the 49 subsets (MTEB's main score), over the
same-language and cross-language subsets, and the time taken.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lib.data import load_mlqa_retrieval  # noqa: E402
from lib.distill import student_dir  # noqa: E402
from lib.backbones import load_encoder  # noqa: E402
from lib.mlqa_retrieval import evaluate_mlqa_retrieval  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--items", type=int, default=0, help="items per subset (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    subsets = load_mlqa_retrieval(max_items=args.items)
    models = [(f"distilled-L{args.layers}", lambda: load_encoder(str(student_dir(args.layers))))]
    if args.items:
        models.append((f"truncated-L{args.layers}", lambda: load_encoder("embedded", args.layers)))
    for name, make in models:
        encoder = make()
        t0 = time.perf_counter()
        result = evaluate_mlqa_retrieval(encoder, subsets, max_items=args.items, max_length=512, progress=False)
        s = result.summary().set_index(["setting", "metric"])["value"]
        print(f"{name}: MLQARetrieval nDCG@10 over 49 subsets ({args.items or 'all'} items each): "
              f"all {s['all', 'ndcg_at_10']:.3f}, same-language {s['same', 'ndcg_at_10']:.3f}, "
              f"cross-language {s['cross', 'ndcg_at_10']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
