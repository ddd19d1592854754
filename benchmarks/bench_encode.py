"""Encoding speed of the embedded backbone on XQuAD-R questions and candidate sentences.

Prints sentences/s (median over repeats) and peak resident memory for fp32
and bf16 autocast. Usage::

    python benchmarks/bench_encode.py [--n 2000] [--repeats 3] [--layers 0] [--modes fp32,bf16]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lib.encoder import load_encoder  # noqa: E402


def xquad_r_texts() -> dict[str, list[str]]:
    """All XQuAD-R questions and candidate sentences, every language."""
    try:
        from lib.data import load_lareqa
    except ImportError:  # the data layer is optional here
        load_lareqa = None
    if load_lareqa is not None:
        rs = load_lareqa("xquad_r")
        return {"question": rs.queries["text"].tolist(), "sentence": rs.docs["text"].tolist()}
    folder = Path(os.environ.get("HBT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")) / "xquad_r"
    texts: dict[str, list[str]] = {"question": [], "sentence": []}
    for path in sorted(folder.glob("*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for para in article["paragraphs"]:
                texts["question"] += [qa["question"] for qa in para["qas"]]
                texts["sentence"] += [s.strip() for s in para["sentences"] if s.strip()]
    if not texts["question"]:
        sys.exit(f"no XQuAD-R files under {folder}; set HBT_DATA_DIR")
    return texts


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter (Linux); harmless elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    print(f"load_encoder('embedded'): {time.perf_counter() - t0:.1f} s, peak RSS {peak_rss_mb():.0f} MB, "
          f"torch threads {torch.get_num_threads()}")
    rng = random.Random(args.seed)
    samples = {kind: rng.sample(texts, min(args.n, len(texts))) for kind, texts in xquad_r_texts().items()}

    rows = []
    for kind, texts in samples.items():
        n_tokens = [len(x) for x in encoder.tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
        for mode in args.modes.split(","):
            os.environ["HBT_BF16"] = {"fp32": "0", "bf16": "1"}[mode]
            encoder.encode(texts[: args.batch_size], "query", batch_size=args.batch_size)  # warm-up
            reset_peak_rss()
            speeds, cpu_speeds = [], []
            for _ in range(args.repeats):
                start, cpu_start = time.perf_counter(), time.process_time()
                encoder.encode(texts, "query" if kind == "question" else "passage",
                               batch_size=args.batch_size, max_length=args.max_length, progress=False)
                speeds.append(len(texts) / (time.perf_counter() - start))
                cpu_speeds.append(len(texts) / (time.process_time() - cpu_start))
            rows.append((kind, mode, len(texts), statistics.mean(n_tokens), statistics.median(speeds),
                         min(speeds), max(speeds), statistics.median(cpu_speeds), peak_rss_mb()))
            print(f"  {kind} {mode}: {rows[-1][4]:.1f} texts/s", flush=True)

    print(f"\nlayers={encoder.model.config.num_hidden_layers} batch_size={args.batch_size} "
          f"max_length={args.max_length} repeats={args.repeats}")
    print("texts/s: wall clock, median of repeats; texts/cpu-s: per second of process CPU time (robust to "
          "other load on the machine)")
    print(f"{'texts':<9} {'mode':<5} {'n':>5} {'mean tok':>8} {'texts/s':>8} {'min':>7} {'max':>7} "
          f"{'texts/cpu-s':>11} {'peak RSS MB':>11}")
    for kind, mode, n, tok, med, lo, hi, cpu, rss in rows:
        print(f"{kind:<9} {mode:<5} {n:>5} {tok:>8.1f} {med:>8.1f} {lo:>7.1f} {hi:>7.1f} {cpu:>11.1f} {rss:>11.0f}")


if __name__ == "__main__":
    main()
