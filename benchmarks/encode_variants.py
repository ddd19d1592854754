"""Encoding speed of the embedded backbone under each attention implementation transformers offers here.

    python benchmarks/encode_variants.py                  # 1,100 XQuAD-R questions and sentences, 3 repeats
    python benchmarks/encode_variants.py --n 256 --repeats 1

The project's ``Encoder.encode`` (length-sorted batches of 64, bf16 autocast
where the CPU has bf16) with the model's attention set to ``sdpa`` (what
``load_encoder`` gives) and to ``eager`` (attention written out as matrix
products and a softmax), in rotated order between repeats. Prints texts/s
(median and range), the ratio to ``sdpa``, and the agreement (lowest and mean
cosine to the ``sdpa`` embeddings), with the CPU model and precision.
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

VARIANTS = ("sdpa", "eager")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1100, help="XQuAD-R questions and candidate sentences each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoder = load_encoder("embedded")
    questions, sentences, _ = xquad_texts(args.n, args.seed)
    print(f"machine: {describe()}, torch {torch.__version__}, {args.threads} threads; {encoder}")
    print(f"{'texts':<10} {'attention':<10} {'texts/s':>8} {'range':>15} {'vs sdpa':>8} {'cos min':>9} {'cos mean':>9}")
    for kind, texts, role in (("questions", questions, "query"), ("sentences", sentences, "passage")):
        embs, times = {}, {v: [] for v in VARIANTS}
        for r in range(args.repeats + 1):  # round 0: warm-up and the embeddings compared
            order = VARIANTS[r % 2:] + VARIANTS[:r % 2]
            for variant in order:
                encoder.model.config._attn_implementation = variant
                t0 = time.perf_counter()
                out = encoder.encode(texts, role, progress=False)
                if r == 0:
                    embs[variant] = out
                else:
                    times[variant].append(time.perf_counter() - t0)
        encoder.model.config._attn_implementation = "sdpa"
        base = statistics.median(len(texts) / t for t in times["sdpa"])
        for variant in VARIANTS:
            speeds = [len(texts) / t for t in times[variant]]
            cos = np.sum(embs[variant] * embs["sdpa"], axis=1)
            print(f"{kind:<10} {variant:<10} {statistics.median(speeds):>8.1f} "
                  f"{min(speeds):>7.1f}-{max(speeds):<7.1f} {statistics.median(speeds) / base:>8.2f} "
                  f"{cos.min():>9.6f} {cos.mean():>9.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
