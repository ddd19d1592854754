"""Training throughput (pairs/s) of a backbone: fp32 vs bf16, word embeddings frozen or not.

    python benchmarks/bench_train.py                      # embedded e5-small, 12 layers
    python benchmarks/bench_train.py --layers 2 --steps 2 # quick look

Each setting runs ``--warmup`` untimed steps, then ``--steps`` timed ones of
``lib.contrastive.train_step`` (tokenize, forward of queries and passages,
InfoNCE, backward, AdamW) on ``--batch-size`` pairs whose query and passage
both fill ``--length`` tokens. The weights change between settings; only
time is measured. Prints a table (and writes it as CSV with ``--csv``).
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from lib.backbones import load_encoder
from lib.contrastive import DualEmbed, prepare_params, train_step
from lib.encoder import bf16_supported
from lib.training import TrainConfig

SENTENCE = ("Der Fluss fließt durch die alte Stadt und 河流穿过古老的城市 while the bridge, built in 1820, "
            "still carries traffic across the valley; el puente sigue en uso. ")


def texts(n: int, offset: int) -> list[str]:
    """``n`` distinct texts, each long enough to be truncated at 64+ tokens."""
    return [f"{offset + i}: " + SENTENCE * 6 for i in range(n)]


def bench(encoder, bf16: bool, freeze: bool, batch_size: int, length: int, steps: int, warmup: int) -> dict:
    cfg = TrainConfig(batch_size=batch_size, max_query_length=length, max_passage_length=length,
                      freeze_word_embeddings=freeze, bf16=bf16, steps=max(steps + warmup, 1), warmup_steps=0)
    optimizer = torch.optim.AdamW(prepare_params(encoder, cfg), lr=cfg.lr)
    module = DualEmbed(encoder)
    encoder.model.train()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        train_step(module, encoder, texts(batch_size, 1000 * i), texts(batch_size, 1000 * i + 500), cfg,
                   optimizer, bf16, torch.device("cpu"))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    seconds = sum(times) / len(times)
    trainable = sum(p.numel() for p in encoder.model.parameters() if p.requires_grad)
    return {"precision": "bf16" if bf16 else "fp32", "word_embeddings": "frozen" if freeze else "trained",
            "trainable_params_M": round(trainable / 1e6, 1), "s_per_step": round(seconds, 2),
            "s_per_step_min": round(min(times), 2), "pairs_per_s": round(batch_size / seconds, 1)}


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="embedded")
    ap.add_argument("--layers", type=int, default=0, help="keep the first k layers (0 = all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--length", type=int, default=64, help="tokens per query and per passage")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per setting")
    ap.add_argument("--csv", default="", help="also write the table here")
    args = ap.parse_args(argv)
    encoder = load_encoder(args.backbone, args.layers)
    precisions = [False, True] if bf16_supported() else [False]
    print(f"{encoder}, torch threads {torch.get_num_threads()}, batch {args.batch_size} x {args.length} tokens, "
          f"bf16 {'available' if len(precisions) == 2 else 'not supported here: fp32 only'}", flush=True)
    rows = []
    for bf16 in precisions:
        for freeze in (True, False):
            rows.append(bench(encoder, bf16, freeze, args.batch_size, args.length, args.steps, args.warmup))
            print("  " + ", ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return table


if __name__ == "__main__":
    main()
