"""Encoding with torch (bf16 autocast or fp32) against OpenVINO, in one process: speed, agreement, mAP.

    python benchmarks/encode_backends.py                              # speed and agreement only
    python benchmarks/encode_backends.py --models zero-shot results/default/models/cross_s0

Speed: the same XQuAD-R questions and candidate sentences as
``bench_peer.py`` (same sample, batch size 64, 2 threads), each backend
timed ``--repeats`` times with the order rotated between repeats; the first
OpenVINO call of a model (conversion and compilation) is timed on its own.
Agreement: cosine of every embedding to the torch forward's. mAP: for each
model in ``--models`` (``zero-shot`` = the untuned backbone, or a model
folder), XQuAD-R in full encoded by each backend, and the mono / cross /
multilingual mAP and multilingual rank distance of both (the issue's bar:
embeddings at cosine >= 0.9999, metrics within 0.001 mAP).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_peer import env_setting, xquad_texts  # noqa: E402
from lib import openvino_backend  # noqa: E402
from lib.backbones import load_encoder  # noqa: E402
from lib.data import load_lareqa  # noqa: E402
from lib.evaluation import aggregate, layout, per_query_frame, protocol_langs  # noqa: E402
from lib.machine import cpu_model, precision  # noqa: E402
from lib.models import describe_model  # noqa: E402
from lib.retrieval import block_ranks  # noqa: E402

BACKENDS = ("torch", "openvino")


def backend(name: str):
    return env_setting(openvino_backend.ENV, name)


def encode(encoder, texts, role, name, batch_size=64, max_length=128):
    with backend(name):
        out = encoder.encode(texts, role, batch_size=batch_size, max_length=max_length, progress=False)
    if encoder.last_backend != name:
        sys.exit(f"asked for {name}, encoded with {encoder.last_backend!r} ({len(texts)} texts)")
    return out


def speed(encoder, questions, sentences, repeats: int) -> None:
    with backend("openvino"):
        t0 = time.perf_counter()
        encoder.prepare(len(questions))
        print(f"OpenVINO conversion and compilation: {time.perf_counter() - t0:.1f} s (once per model state)")
    print(f"{'texts':<10} {'backend':<9} {'texts/s':>8} {'range':>15} {'vs torch':>9} {'cos min':>9} {'cos mean':>9}")
    for kind, texts, role in [("questions", questions, "query"), ("sentences", sentences, "passage")]:
        embs = {b: encode(encoder, texts, role, b) for b in BACKENDS}  # warm-up, and the agreement
        times = {b: [] for b in BACKENDS}
        for r in range(repeats):
            for b in BACKENDS[r % 2:] + BACKENDS[:r % 2]:
                t0 = time.perf_counter()
                encode(encoder, texts, role, b)
                times[b].append(time.perf_counter() - t0)
        med = {b: statistics.median(len(texts) / t for t in times[b]) for b in BACKENDS}
        for b in BACKENDS:
            cos = np.sum(embs["torch"] * embs[b], axis=1)
            sp = [len(texts) / t for t in times[b]]
            print(f"{kind:<10} {b:<9} {med[b]:>8.1f} {min(sp):>7.1f}-{max(sp):<7.1f} {med[b] / med['torch']:>9.2f} "
                  f"{cos.min():>9.6f} {cos.mean():>9.6f}")


def map_agreement(models) -> None:
    data = load_lareqa("xquad_r")
    lay = layout(data)
    langs = protocol_langs("xquad_r", lay)
    print(f"\n== XQuAD-R in full ({len(lay.queries)} questions, {len(lay.docs)} candidates), each backend")
    print(f"{'model':<28} {'metric':<22} {'torch':>8} {'openvino':>9} {'diff':>9} {'cos min':>9} {'enc s t/ov':>12}")
    for model in models:
        spec = describe_model("embedded" if model == "zero-shot" else model)
        encoder = spec.load()
        out, cos_min, secs = {}, 1.0, {}
        for b in BACKENDS:
            t0 = time.perf_counter()
            q = encode(encoder, lay.queries["text"].tolist(), "query", b)
            d = encode(encoder, lay.docs["text"].tolist(), "passage", b)
            secs[b] = time.perf_counter() - t0
            pool, own, top = block_ranks(q, d, lay.relevant, lay.bounds, top_k=10)
            rows = aggregate(per_query_frame(lay, pool, own, top), langs)
            out[b] = rows.groupby(["setting", "metric"])["value"].mean()
            out[b + "_emb"] = (q, d)
        for i in (0, 1):
            cos_min = min(cos_min, float(np.sum(out["torch_emb"][i] * out["openvino_emb"][i], axis=1).min()))
        for setting, metric in [("mono", "map"), ("cross", "map"), ("multi", "map"), ("multi", "rank_distance")]:
            a, b = out["torch"][(setting, metric)], out["openvino"][(setting, metric)]
            print(f"{spec.name:<28} {setting + ' ' + metric:<22} {a:>8.4f} {b:>9.4f} {b - a:>+9.4f} {cos_min:>9.6f} "
                  f"{secs['torch']:>5.0f}/{secs['openvino']:<5.0f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1100, help="XQuAD-R questions and candidate sentences each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=[], help="zero-shot and/or model folders for the mAP check")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not openvino_backend.installed():
        sys.exit("encode_backends.py compares with OpenVINO: install it as the set-up does "
                 "(`.venv/bin/pip install --no-deps -r requirements-nodeps.txt`)")
    openvino_backend.telemetry_off()
    import openvino

    torch.set_num_threads(args.threads)
    encoder = load_encoder("embedded")
    print(f"CPU: {cpu_model()} ({platform.machine()}), torch {torch.__version__}, openvino "
          f"{openvino.__version__.split('-')[0]}, {args.threads} threads, precision {precision()}; {encoder}")
    questions, sentences, _ = xquad_texts(args.n, args.seed)
    speed(encoder, questions, sentences, args.repeats)
    if args.models:
        map_agreement(args.models)


if __name__ == "__main__":
    main()
