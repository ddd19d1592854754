"""Encoding speed of the embedded backbone: attention implementations and batch sizes.

    python benchmarks/encode_variants.py                  # 1,100 XQuAD-R questions and sentences, 3 repeats
    python benchmarks/encode_variants.py --n 256 --repeats 1

The project's ``Encoder.encode`` (length-sorted batches, bf16 autocast where
the CPU has bf16) as used (``sdpa`` attention, what ``load_encoder`` gives,
batches of 64) against ``eager`` attention (written out as matrix products
and a softmax) and against larger batches (``--batch-sizes``), in rotated
order between repeats. Prints texts/s (median and range), the ratio to the
default, and the agreement (lowest and mean cosine to the default's
embeddings), with the CPU model and precision.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lib.backbones import load_encoder  # noqa: E402
from lib.machine import describe  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peer import xquad_texts  # noqa: E402



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1100, help="XQuAD-R questions and candidate sentences each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-sizes", default="128,256", help="larger batches to time with sdpa attention")
    args = ap.parse_args(argv)
    variants = [("sdpa", 64), ("eager", 64)] + [("sdpa", int(b)) for b in args.batch_sizes.split(",") if b]
    torch.set_num_threads(args.threads)
    encoder = load_encoder("embedded")
    questions, sentences, _ = xquad_texts(args.n, args.seed)
    print(f"machine: {describe()}, torch {torch.__version__}, {args.threads} threads; {encoder}")
    print(f"{'texts':<10} {'attention':<10} {'batch':>5} {'texts/s':>8} {'range':>15} {'vs default':>10} "
          f"{'cos min':>9} {'cos mean':>9}")
    for kind, texts, role in (("questions", questions, "query"), ("sentences", sentences, "passage")):
        embs, times = {}, {v: [] for v in variants}
        for r in range(args.repeats + 1):  # round 0: warm-up and the embeddings compared
            k = r % len(variants)
            for variant in variants[k:] + variants[:k]:
                attention, batch = variant
                encoder.model.config._attn_implementation = attention
                t0 = time.perf_counter()
                out = encoder.encode(texts, role, batch_size=batch, progress=False)
                if r == 0:
                    embs[variant] = out
                else:
                    times[variant].append(time.perf_counter() - t0)
        encoder.model.config._attn_implementation = "sdpa"
        base = statistics.median(len(texts) / t for t in times[variants[0]])
        for variant in variants:
            speeds = [len(texts) / t for t in times[variant]]
            cos = np.sum(embs[variant] * embs[variants[0]], axis=1)
            print(f"{kind:<10} {variant[0]:<10} {variant[1]:>5} {statistics.median(speeds):>8.1f} "
                  f"{min(speeds):>7.1f}-{max(speeds):<7.1f} {statistics.median(speeds) / base:>10.2f} "
                  f"{cos.min():>9.6f} {cos.mean():>9.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
