"""Full-size check: MLQARetrieval nDCG@10 from the project's evaluation and from ``mteb.evaluate``.

The untuned backbone on all 49 MLQA dev subsets (15,747 questions), both
sides in fp32 (see ``lib.mteb_eval.mteb_agreement``); prints the largest
absolute difference over the 49 subsets (against mteb's 5-decimal values,
and unrounded) and the slowest part. Needs mteb (requirements-mteb.txt).

    .venv/bin/python benchmarks/mteb_agreement.py                 # 12 layers, all items
    .venv/bin/python benchmarks/mteb_agreement.py --layers 2 --max-items 30
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="embedded")
    parser.add_argument("--layers", type=int, default=0, help="keep the first k layers (0 = all)")
    parser.add_argument("--max-items", type=int, default=0, help="items per subset (0 = all, mteb's full task)")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per text (512: what mteb applies)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--out-dir", default=None, help="mteb's result cache (default CACHE_DIR/mteb)")
    parser.add_argument("--csv", default=None, help="also write the per-subset table here")
    parser.add_argument("--reuse-embeddings", action="store_true",
                        help="give mteb the local side's vectors (encoder runs once; see mteb_agreement)")
    parser.add_argument("--bf16", action="store_true", help="keep bf16 autocast (default: fp32 for the check)")
    args = parser.parse_args(argv)

    import torch

    from lib import mteb_eval as ME
    from lib.data import load_mlqa_retrieval
    from lib.backbones import load_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    encoder = load_encoder(args.backbone, num_layers=args.layers)
    subsets = load_mlqa_retrieval(max_items=args.max_items)
    table = ME.mteb_agreement(encoder, subsets, max_items=args.max_items, batch_size=args.batch_size,
                              max_length=args.max_length, out_dir=args.out_dir, progress=False,
                              fp32=not args.bf16, reuse_embeddings=args.reuse_embeddings)
    seconds = time.perf_counter() - t0
    a = table.attrs
    print(f"model {a['model_name']} revision {a['revision']} ({encoder.model.config.num_hidden_layers} layers), "
          f"mteb {a['mteb_version']}, fp32 {a['fp32']}, max_length {args.max_length}, "
          f"max_items {args.max_items or 'all'}: {len(table)} subsets, {a['n_queries']} questions")
    if a["reuse_embeddings"]:
        print(f"embeddings reused: mteb got the local side's vectors; texts mteb asked for that the local side "
              f"never encoded: {a['mteb_new_texts']}")
    print(f"max |round(local, 5) - mteb| nDCG@10 over the {len(table)} subsets: {a['max_abs_diff']:.2e} "
          f"({len(table) - a['n_exact']} subsets above {ME.EXACT:g}; {a['n_within_ties']} of them within the range "
          f"that near-ties (scores <= {a['tie_tol']:g} apart) allow): {'agree' if a['agree'] else 'DISAGREE'}")
    print(f"max |local - mteb| (unrounded local; mteb rounds to 5 decimals): {a['max_raw_diff']:.2e}")
    print(f"mean nDCG@10 over the subsets: local {table['local'].mean():.5f}, mteb {table['mteb'].mean():.5f}")
    worst = table.nlargest(3, "raw_diff")[["subset", "local", "mteb", "raw_diff"]]
    print(worst.to_string(index=False))
    print(f"wall time {seconds / 60:.1f} min")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0 if a["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
