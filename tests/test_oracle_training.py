"""Training wiring against independent oracles (tiny random encoder, tiny data).

- ``train_step``'s loss and gradients equal InfoNCE computed from (query_i,
  passage_i) pairs embedded one text at a time, with the role prefixes;
- training lowers the validation loss on a learnable task;
- ``model/`` holds the weights of ``best_step`` (a snapshot taken during
  training), not the last ones;
- the learning rate of every step follows linear warm-up then linear decay to
  0, and the AdamW groups decay exactly the weights that are neither biases
  nor LayerNorm weights (frozen word embeddings in no group);
- bf16 autocast is really used when asked (skipped where the CPU lacks bf16).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import lib.training as T
from lib.backbones import load_encoder
from lib.contrastive import (BUCKET_OVERHEAD_TOKENS, DualEmbed, adamw, bucketed_embed, computed_lengths, length_buckets,
                             prepare_params, train_step)
from lib.encoder import bf16_supported
from lib.errors import ConfigError
from lib.training import TrainConfig, train
from tiny_model import build_tiny_encoder

DEVICE = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def cfg_for(**kw) -> TrainConfig:
    base = dict(backbone="tiny", strategy="hybrid", steps=6, batch_size=4, warmup_steps=2, eval_every=1,
                lr=1e-3, bf16=False, val_pairs=16, temperature=0.05)
    return TrainConfig(**(base | kw))


def no_dropout(enc):
    for module in enc.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return enc


def learnable_pairs(n_items: int = 40, n_val: int = 8) -> pd.DataFrame:
    """Item (x, y) is the two-word text "x y" written in language a, b or c (word ``<lang><digit>``).

    Questions end with "?" and passages with ".", so a passage matches its
    question through the digits only; the validation items are digit pairs
    never trained on, so only a letter-invariant, digit-sensitive encoder
    (learnable, not memorisable) lowers their loss.
    """
    combos = [(x, y) for x in range(10) for y in range(10) if x != y]
    order = np.random.default_rng(0).permutation(len(combos))[:n_items]
    rows = []
    for k, idx in enumerate(order):
        x, y = combos[idx]
        for q in "abc":
            for d in "abc":
                rows.append(dict(dataset="mlqa_test", item_id=f"i{k}", article=f"art{k}", query_lang=q,
                                 doc_lang=d, query=f"{q}{x} {q}{y} ?", passage=f"{d}{y} {d}{x} .",
                                 split="val" if k >= n_items - n_val else "train"))
    return pd.DataFrame(rows)


def weights(enc) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in enc.model.state_dict().items()}


class Recorder:
    """Stands in for the optimizer: keeps the gradients ``train_step`` leaves before ``step()``."""

    def __init__(self, model):
        self.named = list(model.named_parameters())
        self.grads: dict[str, torch.Tensor] = {}
        self.zeroed = False

    def step(self):
        self.grads = {n: p.grad.detach().clone() for n, p in self.named if p.grad is not None}

    def zero_grad(self, set_to_none=True):
        self.zeroed = True
        for _, p in self.named:
            p.grad = None


def reference_loss(q: torch.Tensor, p: torch.Tensor, t: float) -> torch.Tensor:
    """InfoNCE written out per query: -log softmax of the own passage, float64."""
    q, p = q.double(), p.double()
    terms = []
    for i in range(len(q)):
        scores = torch.stack([q[i] @ p[j] for j in range(len(p))]) / t
        terms.append(torch.logsumexp(scores, 0) - scores[i])
    return torch.stack(terms).mean()


# ---------------------------------------------------------------- train_step


@pytest.mark.parametrize("overhead", [BUCKET_OVERHEAD_TOKENS, 0], ids=["default-buckets", "bucket-per-length"])
def test_train_step_loss_and_gradients_equal_independently_embedded_pairs(overhead):
    """overhead 0 puts every query and passage length in a bucket of its own."""
    enc = no_dropout(build_tiny_encoder(seed=3))
    queries = ["a1 a2 ?", "b3 b4 b5 ?", "c6 ?", "a7 a8 a9 a0 ?"]
    passages = ["b2 b1 .", "a5 a4 a3 .", "a6 .", "c0 c9 c8 c7 ."]
    cfg = cfg_for(max_query_length=16, max_passage_length=16)
    enc.model.train()
    prepare_params(enc, cfg)
    rec = Recorder(enc.model)
    loss = train_step(DualEmbed(enc, overhead), enc, queries, passages, cfg, rec, False, DEVICE)
    assert rec.zeroed and all(p.grad is None for p in enc.model.parameters())

    # oracle: every text embedded alone, its role's prefix written out here, not taken from the encoder
    def one(text: str) -> torch.Tensor:
        batch = enc.tokenizer([text], return_tensors="pt", return_token_type_ids=False)
        return enc.embed(dict(batch))[0]

    q = torch.stack([one("query: " + t) for t in queries])
    p = torch.stack([one("passage: " + t) for t in passages])
    want = reference_loss(q, p, cfg.temperature)
    assert float(loss) == pytest.approx(float(want.detach()), rel=1e-5)
    want.backward()
    assert rec.grads, "train_step left no gradients"
    for name, param in enc.model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(rec.grads[name], param.grad.float(), rtol=1e-4, atol=1e-6, msg=name)
        else:
            assert name not in rec.grads


# -------------------------------------------------------------- train() runs


def test_training_lowers_the_validation_loss(tmp_path):
    pairs = learnable_pairs()
    # word embeddings trainable: the letters of one digit (a3, b3, c3) must learn to meet
    cfg = cfg_for(steps=40, batch_size=8, warmup_steps=4, eval_every=20, lr=1e-2, val_pairs=64,
                  freeze_word_embeddings=False)
    out = train(cfg, tmp_path / "run", pairs=pairs, encoder=build_tiny_encoder(seed=0), progress=False)
    log = pd.read_csv(out / "train_log.csv")
    val = log.dropna(subset=["val_loss"]).set_index("step")["val_loss"]
    assert val.index.tolist() == [0, 20, 40]
    assert val[40] < 0.5 * val[0], val.to_dict()  # measured: 1.91 -> 0.48
    assert val[20] < val[0]
    # the training loss falls too (means of the first and last 10 steps)
    assert log["loss"].iloc[-10:].mean() < log["loss"].iloc[1:11].mean()


def test_model_folder_holds_the_weights_of_best_step(tmp_path, monkeypatch):
    """Validation losses are scripted so the best step (2) is neither the first nor the last."""
    scripted = iter([5.0, 4.0, 1.0, 3.0, 2.0, 6.0, 7.0])  # steps 0..6
    monkeypatch.setattr(T, "validation_loss", lambda *a, **k: next(scripted))  # the name train() calls
    enc = build_tiny_encoder(seed=0)
    snapshots = {}
    out = train(cfg_for(), tmp_path / "run", pairs=learnable_pairs(), encoder=enc, progress=False,
                callback=lambda step, row: snapshots.__setitem__(step, weights(enc)))
    facts = json.loads((out / "train_config.json").read_text())
    assert facts["best_step"] == 2 and facts["best_val_loss"] == 1.0
    saved = load_encoder(str(out / "model")).model.state_dict()
    for name, value in saved.items():
        torch.testing.assert_close(value, snapshots[2][name], rtol=0, atol=0, msg=name)
    moved = [n for n in saved if not torch.equal(snapshots[2][n], snapshots[6][n])]
    assert len(moved) > 10  # the snapshot at step 2 really differs from the last weights
    last = load_encoder(str(out / "last")).model.state_dict()
    assert all(torch.equal(last[n], snapshots[6][n]) for n in last)


def test_best_step_is_the_lowest_logged_validation_loss(tmp_path):
    out = train(cfg_for(steps=8, eval_every=2, lr=1e-2), tmp_path / "run", pairs=learnable_pairs(),
                encoder=build_tiny_encoder(seed=1), progress=False)
    log = pd.read_csv(out / "train_log.csv")
    val = log[log["step"] > 0].dropna(subset=["val_loss"]).set_index("step")["val_loss"]
    facts = json.loads((out / "train_config.json").read_text())
    assert facts["best_step"] == int(val.idxmin())
    assert facts["best_val_loss"] == pytest.approx(val.min())


# ------------------------------------------------- schedule and decay groups


def expected_lr(step: int, cfg: TrainConfig) -> float:
    """lr of optimizer step ``step`` (1-based): warm-up from 0 over warmup_steps, then linear to 0."""
    k = step - 1
    if k < cfg.warmup_steps:
        return cfg.lr * k / cfg.warmup_steps
    return cfg.lr * (cfg.steps - k) / (cfg.steps - cfg.warmup_steps)


@pytest.mark.parametrize("freeze", [True, False])
def test_schedule_and_weight_decay_groups(tmp_path, monkeypatch, freeze):
    cfg = cfg_for(steps=9, warmup_steps=3, eval_every=0, lr=2e-3, weight_decay=0.1, freeze_word_embeddings=freeze)
    seen = []
    original = T.train_step

    def spy(module, encoder, queries, passages, cfg_, optimizer, bf16, device):
        names = {id(p): n for n, p in encoder.model.named_parameters()}
        seen.append({"type": type(optimizer), "groups": [
            ({names[id(p)] for p in g["params"]}, g["weight_decay"], g["lr"]) for g in optimizer.param_groups]})
        return original(module, encoder, queries, passages, cfg_, optimizer, bf16, device)

    monkeypatch.setattr(T, "train_step", spy)  # the name train() calls (imported from lib.contrastive)
    enc = build_tiny_encoder(seed=0)
    out = train(cfg, tmp_path / "run", pairs=learnable_pairs(), encoder=enc, progress=False)
    log = pd.read_csv(out / "train_log.csv").set_index("step")
    assert len(seen) == cfg.steps
    for step, record in enumerate(seen, start=1):
        assert record["type"] is torch.optim.AdamW
        for _, _, lr in record["groups"]:
            assert lr == pytest.approx(expected_lr(step, cfg), abs=1e-12), step
        assert log.loc[step, "lr"] == pytest.approx(expected_lr(step, cfg), abs=1e-12)
    assert expected_lr(4, cfg) == pytest.approx(cfg.lr)  # the peak, right after warm-up

    groups = seen[0]["groups"]
    decayed = set().union(*[names for names, wd, _ in groups if wd == cfg.weight_decay])
    plain = set().union(*[names for names, wd, _ in groups if wd == 0.0])
    assert {wd for _, wd, _ in groups} <= {cfg.weight_decay, 0.0}
    all_names = [n for n, _ in enc.model.named_parameters()]
    word = "embeddings.word_embeddings.weight"
    for name in all_names:
        no_decay = name.endswith(".bias") or "LayerNorm" in name
        if name == word and freeze:
            assert name not in decayed | plain
        elif no_decay:
            assert name in plain and name not in decayed, name
        else:
            assert name in decayed and name not in plain, name
    assert "encoder.layer.0.attention.self.query.weight" in decayed
    assert "encoder.layer.0.attention.output.LayerNorm.weight" in plain
    assert enc.model.get_input_embeddings().weight.requires_grad is not freeze


# ----------------------------------------------------------------------- bf16


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no bf16 support (lib.encoder.bf16_supported() "
                                                 "is False), so the bf16 training path cannot run here")
def test_bf16_training_runs_under_autocast(tmp_path):
    pairs = learnable_pairs()
    dtypes = []
    enc = build_tiny_encoder(seed=0)
    layer = enc.model.encoder.layer[0].attention.self.query
    handle = layer.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype) if mod.training else None)
    cfg = cfg_for(steps=3, eval_every=0, bf16=True)
    out = train(cfg, tmp_path / "bf16", pairs=pairs, encoder=enc, progress=False)
    handle.remove()
    facts = json.loads((out / "train_config.json").read_text())
    assert facts["bf16_used"] is True
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)  # every training forward ran in bf16
    ref = train(cfg_for(steps=3, eval_every=0, bf16=False), tmp_path / "fp32", pairs=pairs,
                encoder=build_tiny_encoder(seed=0), progress=False)
    bf, fp = (pd.read_csv(d / "train_log.csv") for d in (out, ref))
    assert np.isfinite(bf["loss"].iloc[1:]).all() and np.isfinite(bf["val_loss"].dropna()).all()
    # same weights at step 1 (no update yet): the bf16 loss is the fp32 loss up to bf16 rounding
    assert bf.loc[1, "loss"] == pytest.approx(fp.loc[1, "loss"], rel=0.05)
    assert bf.loc[1, "loss"] != fp.loc[1, "loss"]  # and is not the fp32 computation itself
    assert math.isfinite(facts["best_val_loss"])


# ------------------------------------------------------------ length buckets


def brute_force_cost(lengths: list[int], overhead: int) -> int:
    """The cheapest split of sorted lengths into consecutive runs, by trying every set of cut points."""
    n, best = len(lengths), None
    for mask in range(2 ** (n - 1)):
        cuts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        cost = sum(lengths[a] * (b - a) + overhead for a, b in zip(cuts, cuts[1:]))
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("overhead", [0, 5, 64])
def test_length_buckets_are_the_cheapest_split(overhead):
    rng = np.random.default_rng(overhead)
    for _ in range(20):
        lengths = sorted(rng.integers(3, 97, rng.integers(1, 11)).tolist(), reverse=True)
        spans = length_buckets(lengths, overhead)
        assert spans[0][0] == 0 and spans[-1][1] == len(lengths)
        assert all(b == c for (_, b), (c, _) in zip(spans, spans[1:])) and all(a < b for a, b in spans)
        cost = sum(lengths[a] * (b - a) + overhead for a, b in spans)
        assert cost == brute_force_cost(lengths, overhead), (lengths, spans)
        padded = computed_lengths(lengths[::-1], overhead)  # any order in, longest first out
        assert len(padded) == len(lengths) and sum(padded) == cost - overhead * len(spans)
        assert all(p >= n for p, n in zip(padded, lengths))
    assert length_buckets([9, 9, 9], 0) == [(0, 3)]  # equal lengths: nothing to save
    assert length_buckets([90, 10], 0) == [(0, 1), (1, 2)]
    assert length_buckets([90, 10], 100) == [(0, 2)]  # the saving (80) is below the overhead
    with pytest.raises(ConfigError, match="sorted longest first"):
        length_buckets([3, 9])


def test_bucketed_embed_equals_one_call_in_values_and_gradients():
    enc = no_dropout(build_tiny_encoder(seed=5))
    texts = ["a1 ?", "b1 b2 b3 b4 b5 b6 b7 b8 ?", "c1 c2 ?", "a1 a2 a3 a4 a5 a6 ?", "b9 ?"]
    batch = enc.tokenize(texts, "query", 32)
    lengths = batch["attention_mask"].sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    assert len(length_buckets(lengths[order].tolist(), 0)) > 2  # the split really happens

    def grads_of(embed) -> tuple[torch.Tensor, dict]:
        enc.model.zero_grad(set_to_none=True)
        out = embed()
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in enc.model.named_parameters() if p.grad is not None}

    one, g_one = grads_of(lambda: enc.embed(batch))
    split, g_split = grads_of(lambda: bucketed_embed(enc, batch, overhead_tokens=0))
    torch.testing.assert_close(split, one, rtol=1e-5, atol=1e-6)
    assert g_one.keys() == g_split.keys()
    for name in g_one:
        torch.testing.assert_close(g_split[name], g_one[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fused_adamw_follows_the_reference_adamw():
    """``adamw`` (fused kernel on CPU) moves the weights as torch's reference AdamW does, over 5 steps."""
    encs = [no_dropout(build_tiny_encoder(seed=2)) for _ in range(2)]
    cfg = cfg_for(weight_decay=0.1)
    opts = [adamw(prepare_params(encs[0], cfg), 1e-2),
            torch.optim.AdamW(prepare_params(encs[1], cfg), lr=1e-2, foreach=False)]
    assert opts[0].defaults["fused"] and not opts[1].defaults.get("fused")
    queries, passages = ["a1 a2 ?", "b3 ?", "c6 c7 c8 ?"], ["b2 b1 .", "a3 .", "c8 c7 c6 ."]
    for enc, opt in zip(encs, opts):
        enc.model.train()
        for _ in range(5):
            train_step(DualEmbed(enc), enc, queries, passages, cfg, opt, False, DEVICE)
    moved = 0
    for (name, a), b in zip(encs[0].model.state_dict().items(), encs[1].model.state_dict().values()):
        if name.endswith("attention.self.key.bias"):
            # softmax ignores a shift shared by every key, so this gradient is rounding noise around 0,
            # which Adam scales up to full steps of either sign
            continue
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(a, weights(build_tiny_encoder(seed=2))[name])
    assert moved > 10
