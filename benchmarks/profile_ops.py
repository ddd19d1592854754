"""Where the time of encoding (torch forward) and of a training step goes, by kind of operation.

    python benchmarks/profile_ops.py                 # 512 XQuAD-R sentences, 3 training steps, 2 threads
    python benchmarks/profile_ops.py --texts 128 --steps 1   # a quicker look

Runs torch's profiler over

- ``encode``: the torch forward of :meth:`lib.encoder.Encoder.encode`
  (``HBT_ENCODER_BACKEND=torch``; the OpenVINO backend is opaque to torch's
  profiler) on ``--texts`` XQuAD-R candidate sentences, batch 64, the
  precision the study uses on this CPU (bf16 autocast where the CPU has
  bf16);
- ``train``: ``--steps`` steps of :func:`lib.contrastive.train_step` on the
  study's own batches (the seed-0 hybrid batch sequence, 32 pairs, queries
  <= 64 and passages <= 96 tokens, word embeddings frozen, fused AdamW),
  after one untimed step,

and prints, per phase, the wall time (with and without the profiler) and each kind of operation's share of
it (self time of the operators: matrix multiplies, attention, dtype casts
and copies, GELU, layer norm, the optimizer, the remaining element-wise and
reduction operators) plus the time outside any operator (Python,
tokenizer, autograd bookkeeping), the FLOP/s the matrix multiplies
themselves reach (the profiler's FLOP count of ``mm`` / ``addmm`` /
``bmm``) and its share of this CPU's measured matrix-multiply peak at the
model's shapes (:func:`lib.timing.gemm_peak`), with the CPU model and
precision, and how fast this CPU draws the random numbers of dropout masks.
Compare figures only within one run.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from lib.backbones import load_encoder  # noqa: E402
from lib.contrastive import DualEmbed, adamw, pair_texts, prepare_params, train_step  # noqa: E402
from lib.data import load_lareqa  # noqa: E402
from lib.machine import bf16_supported, describe  # noqa: E402
from lib.sampling import BatchSampler  # noqa: E402
from lib.timing import gemm_peak, model_gemm_shapes  # noqa: E402
from lib.training import TrainConfig  # noqa: E402
from lib.training_data import load_training_pairs  # noqa: E402

GEMM = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation")
# (kind, substrings of the operator name); the first match wins, in this order
KINDS = (
    ("matrix multiplies", GEMM + ("mkldnn_matmul", "aten::_mkldnn")),
    ("attention (softmax, scores)", ("scaled_dot_product", "flash_attention", "efficient_attention", "softmax")),
    ("dtype casts and copies", ("aten::to", "aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous")),
    ("GELU", ("gelu",)),
    ("layer norm", ("layer_norm",)),
    ("optimizer (fused AdamW)", ("adam", "Optimizer.")),
    ("embedding lookup", ("embedding",)),
    ("dropout (masks and their products)", ("dropout", "bernoulli")),
    ("other operators (element-wise, reductions, masks)", ("aten::",)),
)
OUTSIDE = "outside operators (Python, tokenizer, autograd bookkeeping)"


def kind_of(name: str) -> str | None:
    for kind, keys in KINDS:
        if any(k in name for k in keys):
            return kind
    return None


def breakdown(prof, wall_s: float) -> tuple[dict[str, float], float, float, dict[str, list[tuple[str, float]]]]:
    """Seconds per kind of operation (self time; the autograd engine's threads included), the matrix
    multiplies' FLOPs and their own seconds, and each kind's largest operators."""
    seconds, flops, gemm_s, ops = defaultdict(float), 0.0, 0.0, defaultdict(list)
    for ev in prof.key_averages():
        kind = kind_of(ev.key)
        self_s = ev.self_cpu_time_total / 1e6
        if kind is None or self_s <= 0:
            continue
        seconds[kind] += self_s
        ops[kind].append((ev.key, self_s))
        if ev.key in GEMM:
            flops += ev.flops or 0.0
            gemm_s += self_s
    seconds[OUTSIDE] = max(wall_s - sum(seconds.values()), 0.0)
    return dict(seconds), flops, gemm_s, {k: sorted(v, key=lambda x: -x[1]) for k, v in ops.items()}


def report(phase: str, wall_s: float, seconds: dict[str, float], flops: float, gemm_s: float,
           ops: dict[str, list[tuple[str, float]]], peak_tflops: float, unit: str, plain_s: float) -> None:
    print(f"\n{phase}: {wall_s:.2f} s wall under the profiler, {plain_s:.2f} s without it ({unit})")
    print(f"  {'kind of operation':<52} {'seconds':>8} {'share':>7}  largest operators (self seconds)")
    for kind in [k for k, _ in KINDS] + [OUTSIDE]:
        if kind in seconds:
            top = ", ".join(f"{name.removeprefix('aten::')} {sec:.2f}" for name, sec in ops.get(kind, [])[:4])
            print(f"  {kind:<52} {seconds[kind]:>8.3f} {seconds[kind] / wall_s:>7.1%}  {top}")
    if gemm_s > 0:
        rate = flops / gemm_s / 1e12
        print(f"  matrix multiplies alone: {flops / 1e9:.1f} GFLOP in {gemm_s:.2f} s = {rate * 1e3:.1f} GFLOP/s, "
              f"{rate / peak_tflops:.0%} of the measured peak ({peak_tflops * 1e3:.1f} GFLOP/s); over the whole "
              f"phase: {flops / wall_s / 1e9:.1f} GFLOP/s of matrix multiplies ({flops / wall_s / 1e12 / peak_tflops:.0%})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=512, help="XQuAD-R candidate sentences encoded")
    ap.add_argument("--steps", type=int, default=3, help="profiled training steps (after one untimed step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bf16 = bf16_supported()
    os.environ["HBT_ENCODER_BACKEND"] = "torch"
    encoder = load_encoder("embedded")
    dtype = torch.bfloat16 if bf16 else torch.float32
    peaks = gemm_peak(dtype, model_gemm_shapes(encoder.model.config))
    peak = max(peaks.values())
    print(f"machine: {describe()}, torch {torch.__version__}, {args.threads} threads, {encoder}; "
          f"matrix-multiply peak at the model's shapes ({'bf16' if bf16 else 'fp32'}): {peak * 1e3:.1f} GFLOP/s")

    docs = load_lareqa("xquad_r").docs["text"].tolist()
    texts = random.Random(args.seed).sample(docs, min(args.texts, len(docs)))
    encoder.encode(texts[:64], "passage", batch_size=64, max_length=128, progress=False)  # warm-up
    t0 = time.perf_counter()
    encoder.encode(texts, "passage", batch_size=64, max_length=128, progress=False)
    plain = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        t0 = time.perf_counter()
        encoder.encode(texts, "passage", batch_size=64, max_length=128, progress=False)
        wall = time.perf_counter() - t0
    report("encode (torch forward)", wall, *breakdown(prof, wall), peak,
           f"{len(texts)} sentences, batch 64, {len(texts) / plain:.1f} texts/s without the profiler", plain)

    cfg = TrainConfig(strategy="hybrid", seed=args.seed, bf16=bf16)
    pairs = load_training_pairs()
    batches = BatchSampler(pairs, cfg.strategy, cfg.batch_size, cfg.alpha, cfg.seed,
                           cfg.dataset_choice).batches(1 + 2 * args.steps)
    texts = [(pair_texts(pairs, b.indices, "query"), pair_texts(pairs, b.indices, "passage")) for b in batches]
    optimizer = adamw(prepare_params(encoder, cfg), cfg.lr)
    module = DualEmbed(encoder)
    encoder.model.train()
    device = torch.device("cpu")
    train_step(module, encoder, *texts[0], cfg, optimizer, bf16, device)  # untimed
    t0 = time.perf_counter()
    for q, p in texts[1 + args.steps:]:  # the same number of steps, unprofiled, on the next batches
        train_step(module, encoder, q, p, cfg, optimizer, bf16, device)
    plain = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        t0 = time.perf_counter()
        for q, p in texts[1:1 + args.steps]:
            train_step(module, encoder, q, p, cfg, optimizer, bf16, device)
        wall = time.perf_counter() - t0
    report("training step", wall, *breakdown(prof, wall), peak,
           f"{args.steps} steps of {cfg.batch_size} pairs, {plain / args.steps:.2f} s/step without the profiler", plain)
    # the attention-probability dropout of training (BERT's attention_probs_dropout_prob) draws one random number
    # per attention weight; how fast this CPU draws them, by two routes, on one layer's passage-side weights
    probs = torch.empty(cfg.batch_size, encoder.model.config.num_attention_heads, cfg.max_passage_length,
                        cfg.max_passage_length)
    rates = {}
    for name, draw in (("bernoulli_ (torch's dropout)", lambda: torch.empty_like(probs).bernoulli_(0.9)),
                       ("rand_like < p", lambda: torch.rand_like(probs) < 0.9)):
        draw()
        t0 = time.perf_counter()
        for _ in range(5):
            draw()
        rates[name] = 5 * probs.numel() / (time.perf_counter() - t0) / 1e6
    print("\nrandom draws for dropout masks (" + " x ".join(map(str, probs.shape)) + "): "
          + ", ".join(f"{name} {rate:.0f} M/s" for name, rate in rates.items()))
    print("\nShares are of the profiled wall time; the profiler's own cost per operator call lands mostly in the "
          "operators' self time, so phases with many small operators (the backward) read slower under it. "
          "FLOPs are the profiler's count of the matrix multiplies, forward and backward.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
