"""Where the project's MLQARetrieval and mteb's differ: near-ties at float32 resolution.

For every subset whose nDCG@10 differs between ``lib.mlqa_retrieval`` and
``mteb.evaluate`` (``lib.mteb_eval.mteb_agreement``, fp32, the local vectors
handed to mteb), prints the smallest score gap between neighbouring candidates
within any question's top 11, and how many such gaps are below 1e-6: two
candidates that close can be ordered differently by two correct
implementations that sum the same dot product in another order. It also
prints the range of the local nDCG@10 over those orderings
(``lib.mlqa_retrieval.tie_metric_range``, gaps <= ``--tie-tol``) and whether
mteb's value lies in it: the test notebook 07's cross-check applies.

    HBT_DATA_DIR=../shared/data .venv/bin/python benchmarks/mteb_near_ties.py --backbone distilled-L3 --max-items 50
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="distilled-L3")
    parser.add_argument("--max-items", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--out-dir", default="/tmp/mteb_near_ties")
    parser.add_argument("--tie-tol", type=float, default=1e-6, help="largest score gap counted as a near-tie")
    args = parser.parse_args(argv)
    os.environ["HBT_BF16"] = "0"  # as the agreement check: both sides in fp32
    import numpy as np

    from lib import machine, mteb_eval
    from lib.backbones import load_encoder
    from lib.data import load_mlqa_retrieval

    encoder = load_encoder(args.backbone)
    subsets = load_mlqa_retrieval(max_items=args.max_items)
    table = mteb_eval.mteb_agreement(encoder, subsets, max_items=args.max_items, max_length=args.max_length,
                                     out_dir=args.out_dir, reuse_embeddings=True, tie_tol=args.tie_tol)
    differ = table[table["abs_diff"] > mteb_eval.EXACT]
    a = table.attrs
    print(f"{args.backbone}, {args.max_items} items per subset, {machine.cpu_model()}, fp32: "
          f"{a['n_exact']} of {len(table)} subsets agree at mteb's 5 decimals; {a['n_within_ties']} more within "
          f"the range near-ties (gaps <= {args.tie_tol:.0e}) allow: {'agree' if a['agree'] else 'DISAGREE'}")
    for r in differ.itertuples():
        s = subsets[(r.query_lang, r.doc_lang)]
        q = encoder.encode(s.queries["text"].tolist(), "query", max_length=args.max_length, progress=False)
        d = encoder.encode(s.docs["text"].tolist(), "passage", max_length=args.max_length, progress=False)
        top = -np.sort(-(q @ d.T), axis=1)[:, :11]
        gaps = np.abs(np.diff(top, axis=1))
        print(f"  {r.subset} ({r.query_lang} questions, {r.doc_lang} paragraphs): local {r.local:.5f}, mteb "
              f"{r.mteb:.5f}, |diff| {r.abs_diff:.1e}; smallest gap between neighbours in a top 11: "
              f"{gaps.min():.1e}, gaps below 1e-6: {int((gaps < 1e-6).sum())}; local nDCG@10 over the orderings "
              f"of near-ties [{r.tie_low:.5f}, {r.tie_high:.5f}]: mteb {'inside' if r.within_ties else 'OUTSIDE'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
