"""Encoding speed of the embedded backbone on XQuAD-R questions and candidate sentences.

Prints sentences/s (median over repeats) and peak resident memory for fp32
and bf16 autocast. Usage::

    python benchmarks/bench_encode.py [--n 2000] [--repeats 3] [--layers 0] [--modes fp32,bf16]
"""
from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lib.data import load_lareqa  # noqa: E402
from lib.backbones import load_encoder  # noqa: E402
from lib.timing import encode_pass, precision, warm_up  # noqa: E402


def xquad_r_texts() -> dict[str, list[str]]:
    """All XQuAD-R questions and candidate sentences, every language."""
    rs = load_lareqa("xquad_r")
    return {"question": rs.queries["text"].tolist(), "sentence": rs.docs["text"].tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="texts sampled per kind (questions, sentences)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    ap.add_argument("--layers", type=int, default=0, help="keep the first k layers (0 = all)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--modes", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    encoder = load_encoder("embedded", num_layers=args.layers)
    load_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load_encoder('embedded'): {time.perf_counter() - t0:.1f} s, peak RSS {load_peak_mb:.0f} MB, "
          f"torch threads {torch.get_num_threads()}")
    rng = random.Random(args.seed)
    samples = {kind: rng.sample(texts, min(args.n, len(texts))) for kind, texts in xquad_r_texts().items()}

    rows = []
    for kind, texts in samples.items():
        role = "query" if kind == "question" else "passage"
        kw = dict(batch_size=args.batch_size, max_length=args.max_length)
        n_tokens = [len(x) for x in encoder.tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
        for mode in args.modes.split(","):
            with precision(mode):
                warm_up(encoder, texts[: args.batch_size], role, **kw)
                speeds, cpu_speeds, peak = [], [], 0.0
                for _ in range(args.repeats):
                    cpu_start = time.process_time()
                    _, seconds, mib = encode_pass(encoder, texts, role, memory=True, **kw)
                    speeds.append(len(texts) / seconds)
                    cpu_speeds.append(len(texts) / (time.process_time() - cpu_start))
                    peak = max(peak, mib)
            rows.append((kind, mode, len(texts), statistics.mean(n_tokens), statistics.median(speeds),
                         min(speeds), max(speeds), statistics.median(cpu_speeds), peak))
            print(f"  {kind} {mode}: {rows[-1][4]:.1f} texts/s", flush=True)

    print(f"\nlayers={encoder.model.config.num_hidden_layers} batch_size={args.batch_size} "
          f"max_length={args.max_length} repeats={args.repeats}")
    print("texts/s: wall clock, median of repeats; texts/cpu-s: per second of process CPU time (robust to "
          "other load on the machine); peak MiB: resident memory above the level before a pass (highest pass)")
    print(f"{'texts':<9} {'mode':<5} {'n':>5} {'mean tok':>8} {'texts/s':>8} {'min':>7} {'max':>7} "
          f"{'texts/cpu-s':>11} {'peak MiB':>9}")
    for kind, mode, n, tok, med, lo, hi, cpu, rss in rows:
        print(f"{kind:<9} {mode:<5} {n:>5} {tok:>8.1f} {med:>8.1f} {lo:>7.1f} {hi:>7.1f} {cpu:>11.1f} {rss:>9.0f}")


if __name__ == "__main__":
    main()
