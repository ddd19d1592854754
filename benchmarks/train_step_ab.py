"""The training step as it is against the step before length buckets and fused AdamW, on real batches.

    python benchmarks/train_step_ab.py                     # 12 layers, 4 rounds x 3 steps per variant
    python benchmarks/train_step_ab.py --rounds 2 --steps 1

Both variants run ``lib.contrastive.train_step`` on the same batches of the
study's training pairs (a hybrid batch sequence of seed 0, default lengths:
queries <= 64 and passages <= 96 tokens, word embeddings frozen, bf16 where
the CPU has it), each on its own copy of the embedded backbone:

- ``before``: queries and passages each in one call padded to the longest
  text, torch's default (foreach) AdamW;
- ``now``: length buckets (``lib.contrastive.DualEmbed``'s default) and the
  fused AdamW of :func:`lib.contrastive.adamw`.

The order alternates between rounds. Prints seconds per step (median and
range) per variant, the speed-up, and the tokens each variant computes per
step (padded) against the real ones, with the CPU model and precision.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lib.backbones import load_encoder  # noqa: E402
from lib.contrastive import DualEmbed, adamw, computed_lengths, pair_texts, prepare_params, train_step  # noqa: E402
from lib.machine import bf16_supported, describe  # noqa: E402
from lib.sampling import BatchSampler  # noqa: E402
from lib.training import TrainConfig  # noqa: E402
from lib.training_data import load_training_pairs  # noqa: E402

NO_BUCKETS = 10 ** 9  # an overhead no split can beat: one call per side


def tokens(encoder, texts, role, cap, overhead) -> tuple[int, int]:
    """(computed, real) tokens of one side of a batch under the given bucket overhead."""
    real = encoder.tokenize(texts, role, cap)["attention_mask"].sum(1).tolist()
    return sum(computed_lengths(real, overhead)), sum(real)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    ap.add_argument("--layers", type=int, default=0, help="keep the first k layers (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bf16 = bf16_supported()
    cfg = TrainConfig(strategy="hybrid", seed=0, bf16=bf16)
    pairs = load_training_pairs()
    need = 1 + args.rounds * args.steps
    batches = BatchSampler(pairs, cfg.strategy, cfg.batch_size, cfg.alpha, cfg.seed, cfg.dataset_choice).batches(need)
    texts = [(pair_texts(pairs, b.indices, "query"), pair_texts(pairs, b.indices, "passage")) for b in batches]
    base = load_encoder("embedded", args.layers)
    variants = {}
    for name, overhead, fused in (("before", NO_BUCKETS, False), ("now", DualEmbed(base).overhead_tokens, True)):
        enc = copy.deepcopy(base)
        groups = prepare_params(enc, cfg)
        opt = adamw(groups, cfg.lr) if fused else torch.optim.AdamW(groups, lr=cfg.lr)
        enc.model.train()
        variants[name] = (enc, DualEmbed(enc, overhead), opt, overhead)
    print(f"machine: {describe()}, torch {torch.__version__}, {args.threads} threads, {base}, "
          f"batch {cfg.batch_size} pairs, queries <= {cfg.max_query_length} / passages <= "
          f"{cfg.max_passage_length} tokens, {'bf16' if bf16 else 'fp32'}")
    device = torch.device("cpu")
    for enc, module, opt, _ in variants.values():  # one untimed step each
        train_step(module, enc, *texts[0], cfg, opt, bf16, device)
    times = {n: [] for n in variants}
    at = 1
    for r in range(args.rounds):
        chunk = texts[at:at + args.steps]
        at += args.steps
        for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            enc, module, opt, _ = variants[name]
            for q, p in chunk:
                t0 = time.perf_counter()
                train_step(module, enc, q, p, cfg, opt, bf16, device)
                times[name].append(time.perf_counter() - t0)
    print(f"{'variant':<8} {'s/step':>7} {'range':>13} {'tokens computed':>16} {'real':>6}")
    for name, (enc, _, _, overhead) in variants.items():
        counts = [np.add(tokens(enc, q, "query", cfg.max_query_length, overhead),
                         tokens(enc, p, "passage", cfg.max_passage_length, overhead)) for q, p in texts[1:at]]
        computed, real = np.mean(counts, axis=0)
        print(f"{name:<8} {statistics.median(times[name]):>7.2f} {min(times[name]):>6.2f}-{max(times[name]):<6.2f} "
              f"{computed:>16.0f} {real:>6.0f}")
    speedup = statistics.median(times["before"]) / statistics.median(times["now"])
    print(f"speed-up now / before (median s/step): {speedup:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
