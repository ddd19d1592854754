"""What encoding costs: throughput, memory and single-question serving time of encoders.

The encoder is the same network whatever the training strategy, so these
measure a cost that should not differ between models (notebook 06 shows it):
:func:`encoding_costs` (passages per second over repeats, tokens per second,
peak memory, fp32 vs bf16), :func:`time_end_to_end` and
:func:`e2e_latencies` (one question encoded, then searched). Every timing
interleaves the models, so a change in machine load hits all alike. The
experiment that uses them is :mod:`lib.efficiency`; timing helpers are in
:mod:`lib.timing`.
"""
from __future__ import annotations

import time
from typing import Sequence

import faiss
import numpy as np
import pandas as pd

from lib.errors import ConfigError
from lib.indexes import truncate
from lib.timing import encode_pass, hardware_bf16, precision, spread, warm_up

FRAME = ["model", "index", "param", "value_name", "value"]


def time_end_to_end(targets: dict[str, tuple[object, faiss.Index]], texts: Sequence[str], *, dim: int = 0,
                    k: int = 10, max_length: int = 128, warmup: int = 2) -> tuple[dict[str, np.ndarray], ...]:
    """Single-question serving time for each ``name -> (encoder, index)``: encode one question (truncated
    to ``dim`` when set), then search; questions in turn, models interleaved, after ``warmup`` untimed
    questions. Returns (seconds encoding, seconds in all) per model, one value per question."""
    texts = list(texts)
    kw = dict(batch_size=1, max_length=max_length, progress=False)
    for enc, index in targets.values():
        for text in texts[:warmup]:
            vec = enc.encode([text], "query", **kw)
            index.search(truncate(vec, dim) if dim else vec, min(k, index.ntotal))
    encode_s = {m: np.empty(len(texts)) for m in targets}
    total_s = {m: np.empty(len(texts)) for m in targets}
    for i, text in enumerate(texts):
        for m, (enc, index) in targets.items():
            t0 = time.perf_counter()
            vec = enc.encode([text], "query", **kw)
            t1 = time.perf_counter()
            index.search(truncate(vec, dim) if dim else vec, min(k, index.ntotal))
            encode_s[m][i], total_s[m][i] = t1 - t0, time.perf_counter() - t0
    return encode_s, total_s


def encoding_costs(encoders: dict[str, object], texts: Sequence[str], *, role: str = "passage",
                   max_length: int = 256, batch_size: int = 32, repeats: int = 3,
                   precisions: Sequence[str] | None = None) -> pd.DataFrame:
    """Encode ``texts`` with every encoder, ``repeats`` times per precision, models interleaved in each
    repeat and the order rotated from repeat to repeat (after one untimed warm-up pass per precision: the
    models share their architecture, so the kernels it prepares serve all); rows ``model,
    index="encoder", param, value_name, value``.

    Values: ``texts_per_s`` (median, p5, p95 over repeats), ``tokens_per_s``,
    ``peak_rss_mib`` (highest peak memory above the start of a pass),
    ``n_params``, and for bf16 the mean cosine to the fp32 embeddings.
    """
    texts = list(texts)
    if not texts or repeats < 1:
        raise ConfigError(f"encoding cost needs texts (got {len(texts)}) and repeats >= 1 (got {repeats})")
    precisions = list(precisions or (["fp32", "bf16"] if hardware_bf16() else ["fp32"]))
    kw = dict(batch_size=batch_size, max_length=max_length)
    rows, fp32 = [], {}
    for mode in precisions:
        param = f"precision={mode},max_length={max_length},batch={batch_size}"
        with precision(mode):
            warm_up(next(iter(encoders.values())), texts, role, **kw)  # kernels for these shapes
            for enc in encoders.values():
                enc.prepare(len(texts))  # each model's OpenVINO conversion, if any, outside the timed passes
            embs, times = {}, {m: [] for m in encoders}
            peaks = dict.fromkeys(encoders, 0.0)
            names = list(encoders)
            for r in range(repeats):
                for m in names[r % len(names):] + names[:r % len(names)]:  # each repeat starts with another model
                    embs[m], seconds, mib = encode_pass(encoders[m], texts, role, memory=True, **kw)
                    times[m].append(seconds)
                    peaks[m] = max(peaks[m], mib)
        for m, enc in encoders.items():
            n_tokens = sum(len(x) for x in enc.tokenizer([enc.prefix(role) + t for t in texts], truncation=True,
                                                         max_length=max_length)["input_ids"])
            values = {**spread(len(texts) / np.asarray(times[m]), "texts_per_s"),
                      "tokens_per_s": n_tokens / float(np.median(times[m])), "peak_rss_mib": peaks[m],
                      "n_params": float(sum(p.numel() for p in enc.model.parameters())),
                      "n_texts": float(len(texts)), "n_tokens": float(n_tokens)}
            if mode == "fp32":
                fp32[m] = embs[m]
            elif m in fp32:
                values["cosine_vs_fp32"] = float(np.mean(np.sum(embs[m] * fp32[m], axis=1)))
            rows += [(m, "encoder", param, name, float(v)) for name, v in values.items()]
    return pd.DataFrame(rows, columns=FRAME)


def encoding_cost(encoder, texts: Sequence[str], **kwargs) -> pd.DataFrame:
    """:func:`encoding_costs` of one encoder: rows ``index, param, value_name, value``."""
    return encoding_costs({"": encoder}, texts, **kwargs).drop(columns="model")


def e2e_latencies(targets: dict[str, tuple[object, faiss.Index]], texts: Sequence[str], *, k: int = 10,
                  max_length: int = 128, warmup: int = 5) -> pd.DataFrame:
    """Single-query end-to-end latency for each ``name -> (encoder, index)``: encode one question, then
    search; questions in turn, models interleaved. Rows ``model, index="exact", param, value_name, value``
    with ``query_encode_ms_*`` (encoding alone) and ``e2e_latency_ms_*`` (p5 / p50 / p95 over questions)."""
    enc_s, total_s = time_end_to_end(targets, texts, k=k, max_length=max_length, warmup=warmup)
    rows = []
    for m, (_, index) in targets.items():
        values = {**spread(enc_s[m], "query_encode_ms", 1e3), **spread(total_s[m], "e2e_latency_ms", 1e3)}
        rows += [(m, "exact", f"dim={index.d},max_length={max_length}", n, float(v)) for n, v in values.items()]
    return pd.DataFrame(rows, columns=FRAME)
