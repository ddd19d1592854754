"""The project's encoder and training step against sentence-transformers, in one process.

    python benchmarks/bench_peer.py                    # embedded e5-small, 12 layers, 2 threads
    python benchmarks/bench_peer.py --n 256 --repeats 2 --train-steps 2   # a quicker look

Both sides use the same backbone folder (the converted embedded
multilingual-e5-small), the same texts (XQuAD-R questions and candidate
sentences), the same lengths, batch size and thread count; the order of the
contenders is rotated between repeats so slow drift of the machine hits each
alike. Printed:

- the CPU model, torch version, threads and the precision each side uses;
- the measured matrix-multiply peak of this CPU at the model's shapes, per
  precision (the physical ceiling for a BERT of this size);
- encoding: texts/s (median and range over repeats) for the project (its
  default backend, OpenVINO where installed, and the torch forward) and for
  each sentence-transformers configuration, the ratio project / best peer,
  achieved FLOP/s and its share of the GEMM peak, and the agreement (cosine
  of the embeddings);
- a training step (``--batch-size`` pairs, queries <= 64 and passages <= 96
  tokens, word embeddings frozen, fused AdamW on both sides): pairs/s,
  ratio, FLOP/s (counted on the padding each side computes) and share of
  peak, and the agreement of the loss values on the same batch and weights
  (``lib.contrastive.info_nce`` at temperature t against
  ``MultipleNegativesRankingLoss`` at scale 1/t, dropout off).

sentence-transformers is a benchmark-only dependency
(``pip install -r requirements-bench.txt``).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lib import openvino_backend  # noqa: E402
from lib.backbones import load_encoder  # noqa: E402
from lib.contrastive import DualEmbed, adamw, computed_lengths, info_nce, prepare_params, train_step  # noqa: E402
from lib.data import load_lareqa  # noqa: E402
from lib.embedded_model import embedded_model_dir  # noqa: E402
from lib.encoder import bf16_supported  # noqa: E402
from lib.timing import gemm_peak, hardware_bf16, model_gemm_shapes  # noqa: E402
from lib.machine import cpu_model  # noqa: E402
from lib.training import TrainConfig  # noqa: E402

try:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
except ImportError as exc:  # optional: only this benchmark needs it
    sys.exit(f"bench_peer.py needs sentence-transformers ({exc}); install it with "
             "`.venv/bin/pip install -r requirements-bench.txt`")
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()  # the peer's load report of the unused pooler is not a finding


# ----------------------------------------------------------------- FLOP counts


def non_embedding_params(model) -> int:
    emb = {id(p) for p in model.embeddings.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def forward_flops(lengths, params: int, hidden: int, layers: int) -> float:
    """Multiply-adds x 2 of a forward pass over sequences of these lengths (dense layers + attention)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(2 * params * lengths.sum() + layers * 4 * hidden * (lengths ** 2).sum())


@contextlib.contextmanager
def env_setting(name: str, value: str):
    """Environment variable ``name`` set to ``value`` inside the block, restored after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def encode_with(encoder, texts, role, args, name: str, value: str):
    """``encoder.encode`` with environment variable ``name`` set to ``value`` for this call only
    (``HBT_ENCODER_BACKEND=torch``: the torch forward; ``HBT_COMPILE=1``: the compiled forward)."""
    with env_setting(name, value):
        return encoder.encode(texts, role, batch_size=args.encode_batch_size, max_length=args.max_length,
                              progress=False)


def padded_batches(lengths, batch_size: int, sort: bool):
    """Sequence lengths as computed: padded to the longest of each batch (after sorting if ``sort``)."""
    lengths = np.asarray(lengths)
    if sort:
        lengths = np.sort(lengths)[::-1]
    out = []
    for s in range(0, len(lengths), batch_size):
        chunk = lengths[s:s + batch_size]
        out.extend([chunk.max()] * len(chunk))
    return np.asarray(out)


# ----------------------------------------------------------------- data


def xquad_texts(n: int, seed: int):
    rs = load_lareqa("xquad_r")
    rng = random.Random(seed)
    questions = rng.sample(rs.queries["text"].tolist(), min(n, len(rs.queries)))
    sentences = rng.sample(rs.docs["text"].tolist(), min(n, len(rs.docs)))
    q = rs.queries.merge(rs.qrels, on="qid").merge(rs.docs[["doc_id", "lang", "text"]], on="doc_id",
                                                     suffixes=("", "_doc"))
    q = q[q["lang"] == q["lang_doc"]].drop_duplicates("qid")
    pairs = list(zip(q["text"].tolist(), q["text_doc"].tolist()))
    rng.shuffle(pairs)
    return questions, sentences, pairs


# ----------------------------------------------------------------- contenders


def summary(values):
    return statistics.median(values), min(values), max(values)


def st_model(folder: Path, dtype: torch.dtype, threads: int):
    model = SentenceTransformer(str(folder), device="cpu", prompts={"query": "query: ", "document": "passage: "},
                                default_prompt_name=None)
    model.to(dtype)
    torch.set_num_threads(threads)
    return model


def st_encode(model, texts, role, batch_size, max_length):
    model.max_seq_length = max_length
    enc = model.encode_query if role == "query" else model.encode_document
    return enc(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
               show_progress_bar=False)


def st_freeze(model):
    auto = model[0].auto_model
    for p in auto.parameters():
        p.requires_grad_(True)
    auto.get_input_embeddings().weight.requires_grad_(False)
    trainable = [p for p in auto.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": 0.01},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]


def st_features(model, texts, prompt, max_length):
    model.max_seq_length = max_length
    return model.preprocess(texts, prompt=prompt)


def st_train_step(model, loss_fn, optimizer, queries, passages, bf16: bool):
    fq = st_features(model, queries, "query: ", 64)
    fp = st_features(model, passages, "passage: ", 96)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn([fq, fp], None)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1100, help="XQuAD-R questions and candidate sentences each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=0, help="keep the first k layers (0 = all 12)")
    ap.add_argument("--encode-batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128, help="encoding truncation")
    ap.add_argument("--batch-size", type=int, default=32, help="pairs per training step")
    ap.add_argument("--compile", action="store_true",
                    help="also time encoding with HBT_COMPILE=1 (torch.compile; compiled in the untimed warm-up)")
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps per repeat")
    ap.add_argument("--temperature", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hw_bf16 = hardware_bf16()
    project_bf16 = bf16_supported()
    project_prec = "bf16" if project_bf16 else "fp32"
    encoder = load_encoder("embedded", num_layers=args.layers)
    folder = embedded_model_dir()
    cfg_m = encoder.model.config
    params = non_embedding_params(encoder.model)
    print(f"CPU: {cpu_model()} ({platform.machine()}), torch {torch.__version__}, {args.threads} threads, "
          f"hardware bf16: {'yes' if hw_bf16 else 'no'}; project precision: {project_prec} "
          f"(bf16 autocast {'on' if project_bf16 else 'off'})")
    print(f"model: {encoder}, non-embedding parameters {params / 1e6:.1f}M")
    print(f"project encoding backend: {openvino_backend.setting()} "
          f"({'OpenVINO' if openvino_backend.wanted(args.n, encoder.model.device) else 'torch'} for calls of "
          f"{args.n} texts; 'project-torch' is the torch forward where the default is OpenVINO)")

    # -- GEMM peak
    shapes = model_gemm_shapes(cfg_m)
    peaks = {}
    for name, dtype in [("fp32", torch.float32)] + ([("bf16", torch.bfloat16)] if hw_bf16 else []):
        per_shape = gemm_peak(dtype, shapes)
        peaks[name] = max(per_shape.values())
        print(f"GEMM peak {name}: {peaks[name]:.3f} TFLOP/s (best shape); per shape " +
              ", ".join(f"{m}x{k}x{n} {v:.3f}" for (m, k, n), v in per_shape.items()))

    questions, sentences, pairs = xquad_texts(args.n, args.seed)
    st_models = {"st-fp32": st_model(folder, torch.float32, args.threads)}
    if hw_bf16:
        st_models["st-bf16"] = st_model(folder, torch.bfloat16, args.threads)
    if args.layers:
        for m in st_models.values():
            auto = m[0].auto_model
            auto.encoder.layer = auto.encoder.layer[:args.layers]
            auto.config.num_hidden_layers = args.layers

    # -- encoding
    print("\n== encoding")
    enc_rows = []
    for kind, texts, role in [("questions", questions, "query"), ("sentences", sentences, "passage")]:
        ids = encoder.tokenizer([encoder.prefix(role) + t for t in texts], truncation=True,
                                max_length=args.max_length)["input_ids"]
        lengths = [len(x) for x in ids]
        useful = forward_flops(lengths, params, cfg_m.hidden_size, cfg_m.num_hidden_layers)
        fns = {"project": lambda: encoder.encode(texts, role, batch_size=args.encode_batch_size,
                                                 max_length=args.max_length, progress=False)}
        if openvino_backend.wanted(len(texts), encoder.model.device):  # the default runs OpenVINO: torch too
            fns["project-torch"] = lambda: encode_with(encoder, texts, role, args, openvino_backend.ENV, "torch")
        if args.compile:
            fns["project+compile"] = lambda: encode_with(encoder, texts, role, args, "HBT_COMPILE", "1")
        for name, m in st_models.items():
            fns[name] = (lambda m=m: st_encode(m, texts, role, args.encode_batch_size, args.max_length))
        names = list(fns)
        embs = {n: fns[n]() for n in names}  # warm-up, and the agreement
        times = {n: [] for n in names}
        for r in range(args.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                t0 = time.perf_counter()
                fns[n]()
                times[n].append(time.perf_counter() - t0)
        cos = {n: np.sum(embs["project"] * embs[n], axis=1) for n in names if n != "project"}
        for n in names:
            speeds = [len(texts) / t for t in times[n]]
            med, lo, hi = summary(speeds)
            flops = useful / statistics.median(times[n])
            prec = project_prec if n.startswith("project") else n.split("-")[1]
            enc_rows.append(dict(kind=kind, who=n, precision=prec, texts_s=med, lo=lo, hi=hi,
                                 gflops=flops / 1e9, peak_share=flops / 1e12 / peaks.get(prec, peaks["fp32"]),
                                 cos_min=float(cos[n].min()) if n in cos else float("nan"),
                                 cos_mean=float(cos[n].mean()) if n in cos else float("nan"),
                                 mean_tokens=float(np.mean(lengths))))
    print(f"{'texts':<10} {'who':<15} {'prec':<5} {'texts/s':>8} {'range':>15} {'GFLOP/s':>8} {'of peak':>8} "
          f"{'cos min':>8} {'cos mean':>8} {'mean tok':>8}")
    for r in enc_rows:
        print(f"{r['kind']:<10} {r['who']:<15} {r['precision']:<5} {r['texts_s']:>8.1f} "
              f"{r['lo']:>7.1f}-{r['hi']:<7.1f} {r['gflops']:>8.1f} {r['peak_share']:>8.0%} "
              f"{r['cos_min']:>8.5f} {r['cos_mean']:>8.5f} {r['mean_tokens']:>8.1f}")
    for kind in ("questions", "sentences"):
        rows = [r for r in enc_rows if r["kind"] == kind]
        best = max((r for r in rows if not r["who"].startswith("project")), key=lambda r: r["texts_s"])
        for proj in (r for r in rows if r["who"].startswith("project")):
            print(f"encode ratio {proj['who']} / best peer ({best['who']}) on {kind}: "
                  f"{proj['texts_s'] / best['texts_s']:.2f}")

    # -- training step
    print("\n== training step")
    cfg = TrainConfig(batch_size=args.batch_size, max_query_length=64, max_passage_length=96,
                      freeze_word_embeddings=True, bf16=project_bf16, steps=1000, warmup_steps=0,
                      temperature=args.temperature)
    n_steps = args.train_steps
    need = (1 + args.repeats * n_steps) * args.batch_size
    while len(pairs) < need:
        pairs = pairs + pairs
    batches = [pairs[i * args.batch_size:(i + 1) * args.batch_size] for i in range(need // args.batch_size)]

    # agreement on the loss: same weights, same batch, dropout off, no step
    q0, p0 = zip(*batches[0])
    q0, p0 = list(q0), list(p0)
    encoder.model.eval()
    with torch.no_grad():
        qe = encoder.embed(encoder.tokenize(q0, "query", 64))
        pe = encoder.embed(encoder.tokenize(p0, "passage", 96))
        loss_project = float(info_nce(qe, pe, args.temperature))
        st_ref = st_models["st-fp32"]
        st_ref.eval()
        mnrl = MultipleNegativesRankingLoss(st_ref, scale=1.0 / args.temperature)
        loss_st = float(mnrl([st_features(st_ref, q0, "query: ", 64), st_features(st_ref, p0, "passage: ", 96)],
                             None))
    print(f"loss on one batch, same weights, dropout off: project {loss_project:.6f}, "
          f"sentence-transformers {loss_st:.6f} (difference {abs(loss_project - loss_st):.2e})")

    # contenders: each trains its own copy from the same weights
    proj_enc = copy.deepcopy(encoder)
    proj_opt = adamw(prepare_params(proj_enc, cfg), cfg.lr)  # what lib.training.train uses
    proj_mod = DualEmbed(proj_enc)
    proj_enc.model.train()
    contenders = {}

    def project_step(batch):
        q, p = zip(*batch)
        return float(train_step(proj_mod, proj_enc, list(q), list(p), cfg, proj_opt, project_bf16,
                                torch.device("cpu")))

    contenders["project"] = (project_step, project_prec)
    st_train = copy.deepcopy(st_models["st-fp32"])
    del st_models  # free the encoding copies
    st_train.train()
    # fused AdamW: the optimizer SentenceTransformerTrainer gets by default (transformers' default
    # optim with torch >= 2.8), so the peer is not slowed by the ten-pass foreach kernel
    st_opt = torch.optim.AdamW(st_freeze(st_train), lr=cfg.lr, fused=True)
    st_loss = MultipleNegativesRankingLoss(st_train, scale=1.0 / args.temperature)
    for bf16 in ([False, True] if hw_bf16 else [False]):
        name = "st-bf16" if bf16 else "st-fp32"

        def step(batch, bf16=bf16):
            q, p = zip(*batch)
            return st_train_step(st_train, st_loss, st_opt, list(q), list(p), bf16)

        contenders[name] = (step, "bf16" if bf16 else "fp32")

    names = list(contenders)
    for n in names:  # one untimed step each
        contenders[n][0](batches[0])
    times = {n: [] for n in names}
    b = 1
    flops_per_step = []
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        chunk = batches[b:b + n_steps]
        b += n_steps
        for batch in chunk:
            q, p = zip(*batch)
            f = {"useful": 0.0, "padded": 0.0, "bucketed": 0.0}
            for texts, role, cap in ((q, "query", 64), (p, "passage", 96)):
                real = encoder.tokenize(list(texts), role, cap)["attention_mask"].sum(1).numpy()
                for key, lengths in (("useful", real), ("padded", np.full(len(real), real.max())),
                                     ("bucketed", computed_lengths(real, proj_mod.overhead_tokens))):
                    f[key] += 3 * forward_flops(lengths, params, cfg_m.hidden_size, cfg_m.num_hidden_layers)
            flops_per_step.append(f)
        for n in order:
            t0 = time.perf_counter()
            for batch in chunk:
                contenders[n][0](batch)
            times[n].append((time.perf_counter() - t0) / len(chunk))
    step_flops = {k: float(np.mean([f[k] for f in flops_per_step])) for k in flops_per_step[0]}
    print("FLOPs per step counted as 3 x forward (forward + backward); 'computed' over the padding each side "
          "computes (sentence-transformers: padded to the longest text of the batch; project: to the longest "
          "of each length bucket), 'useful' over real tokens only; share of peak on computed FLOPs")
    print(f"{'who':<8} {'prec':<5} {'pairs/s':>8} {'range':>13} {'s/step':>7} {'computed':>9} {'useful':>7} "
          f"{'of peak':>8}  (GFLOP/s)")
    train_rows = {}
    for n in names:
        speeds = [args.batch_size / t for t in times[n]]
        med, lo, hi = summary(speeds)
        prec = contenders[n][1]
        seconds = statistics.median(times[n])
        computed = step_flops["bucketed" if n == "project" else "padded"] / seconds / 1e9
        useful = step_flops["useful"] / seconds / 1e9
        train_rows[n] = med
        print(f"{n:<8} {prec:<5} {med:>8.2f} {lo:>6.2f}-{hi:<6.2f} {seconds:>7.2f} {computed:>9.1f} {useful:>7.1f} "
              f"{computed / 1e3 / peaks.get(prec, peaks['fp32']):>8.0%}")
    best = max((n for n in names if n != "project"), key=lambda n: train_rows[n])
    print(f"training-step ratio project / best peer ({best}): {train_rows['project'] / train_rows[best]:.2f}")


if __name__ == "__main__":
    main()
