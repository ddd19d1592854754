"""Data-parallel training (2 gloo processes) equals one process on the same global batch.

Each rank embeds half of every global batch and gathers the passage
embeddings, so the negatives are the whole batch and DDP's gradient average
equals the single-process gradient. Checked (fp32, dropout off: the ranks
cannot share the single process's dropout masks): the logged train and
validation losses (rel 1e-5) and the weights after 3 AdamW steps at lr 1e-3:
at least 99% of the weights within 1e-6, all within 5e-5. Adam divides by
sqrt(v) + eps, so a gradient element near eps turns float32 rounding
differences between the two reduction orders into update differences of a
few 1e-5 (measured: 0.2% of the elements, at most 1.6e-5).
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lib.errors import ConfigError
from lib.training import TrainConfig, train
from test_sampling import make_pairs
from tiny_model import build_tiny_encoder

WORLD = 2


def no_dropout_encoder():
    enc = build_tiny_encoder(seed=0)
    for module in enc.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return enc


def config(**kw) -> TrainConfig:
    base = dict(backbone="tiny", strategy="hybrid", steps=3, batch_size=4, warmup_steps=0, eval_every=0,
                lr=1e-3, bf16=False, val_pairs=16)
    return TrainConfig(**(base | kw))


def _worker(rank: int, init_file: str, out_dir: str, pairs: pd.DataFrame, report: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        enc = no_dropout_encoder()
        train(config(), out_dir, pairs=pairs, encoder=enc, progress=False)
        try:
            train(config(batch_size=5), out_dir + "_odd", pairs=pairs, encoder=enc, progress=False)
            message = ""
        except ConfigError as exc:
            message = str(exc)
        if rank == 0:
            torch.save({"weights": enc.model.state_dict(), "odd_batch_error": message}, report)
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path):
    pairs = make_pairs()
    torch.set_num_threads(1)
    single = no_dropout_encoder()
    train(config(), tmp_path / "single", pairs=pairs, encoder=single, progress=False)

    report = tmp_path / "rank0.pt"
    # fork: no re-import of torch in the children (spawn costs ~15 s more on 2 busy cores); the
    # workers compute with one thread, so the parent's OpenMP pool is never needed after the fork
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path / "ddp"), pairs, str(report)),
                       nprocs=WORLD, join=True, start_method=method)
    got = torch.load(report, weights_only=False)
    assert "must divide by the 2 processes" in got["odd_batch_error"]

    log_single = pd.read_csv(tmp_path / "single" / "train_log.csv")
    log_ddp = pd.read_csv(tmp_path / "ddp" / "train_log.csv")
    pd.testing.assert_series_equal(log_ddp["loss"], log_single["loss"], rtol=1e-5)
    pd.testing.assert_series_equal(log_ddp["val_loss"], log_single["val_loss"], rtol=1e-5)
    assert json.loads((tmp_path / "ddp" / "train_config.json").read_text())["world_size"] == WORLD
    before = no_dropout_encoder().model.state_dict()
    moved = 0
    diffs = []
    for name, value in single.model.state_dict().items():
        diffs.append((got["weights"][name] - value).abs().flatten())
        moved += not torch.equal(value, before[name])
    diffs = torch.cat(diffs)
    assert diffs.max() <= 5e-5, diffs.max()
    assert (diffs <= 1e-6).float().mean() >= 0.99
    assert moved > 10  # the update is real, not two untouched copies


# ------------------------------------------------------- gradients, not Adam


class GradRecorder:
    """Stands in for the optimizer in ``train_step``: keeps the (DDP-reduced) gradients at ``step()``."""

    def __init__(self, model):
        self.named = list(model.named_parameters())
        self.grads: dict[str, torch.Tensor] = {}

    def step(self):
        self.grads = {n: p.grad.detach().clone() for n, p in self.named if p.grad is not None}

    def zero_grad(self, set_to_none=True):
        for _, p in self.named:
            p.grad = None


QUERIES = ["a1 a2 ?", "b3 b4 ?", "c5 c6 c7 ?", "a8 ?"]
PASSAGES = ["b2 b1 .", "c4 c3 .", "a7 a6 a5 .", "b8 ."]


def _grad_step(queries, passages):
    """One train_step (DDP-wrapped under a process group) with a recording optimizer; (loss, grads)."""
    from lib.contrastive import DualEmbed, prepare_params, train_step

    enc = no_dropout_encoder()
    cfg = config()
    prepare_params(enc, cfg)
    enc.model.train()
    module = DualEmbed(enc)
    if dist.is_initialized():
        module = torch.nn.parallel.DistributedDataParallel(module)
    rec = GradRecorder(enc.model)
    loss = train_step(module, enc, queries, passages, cfg, rec, False, torch.device("cpu"))
    return float(loss), rec.grads


def _grad_worker(rank: int, init_file: str, report: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        n = len(QUERIES) // WORLD
        loss, grads = _grad_step(QUERIES[rank * n:(rank + 1) * n], PASSAGES[rank * n:(rank + 1) * n])
        torch.save({"loss": loss, "grads": grads}, f"{report}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_process_gradients_equal_one_process_gradients(tmp_path):
    """The gradient DDP hands the optimizer equals the single-process gradient of the global batch
    (no Adam in between, so a constant factor such as a sum over ranks instead of a mean shows)."""
    torch.set_num_threads(1)
    loss_single, single = _grad_step(QUERIES, PASSAGES)
    report = str(tmp_path / "grads")
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_grad_worker, args=(str(tmp_path / "init"), report), nprocs=WORLD, join=True,
                       start_method=method)
    ranks = [torch.load(f"{report}.{r}", weights_only=False) for r in range(WORLD)]
    # the global loss is the mean of the ranks' local losses (equal local batch sizes)
    assert sum(r["loss"] for r in ranks) / WORLD == pytest.approx(loss_single, rel=1e-5)
    assert set(single) == set(ranks[0]["grads"]) == set(ranks[1]["grads"])
    assert len(single) > 10 and "embeddings.word_embeddings.weight" not in single  # frozen: no gradient
    big = 0
    top = max(float(g.abs().max()) for g in single.values())
    for name, g in single.items():
        scale = float(g.abs().max())
        # float32 reduction orders differ: tolerance relative to the tensor's (or, for gradients that are
        # zero in exact arithmetic such as the attention key bias, the model's) largest entry
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-3, atol=max(1e-3 * scale, 1e-6 * top),
                                       msg=lambda m, name=name: f"{name}: {m}")
        big += scale > 1e-4
    assert big > 10  # the comparison is not between vanishing gradients
    flat = lambda grads: torch.cat([grads[n].flatten() for n in sorted(single)])  # noqa: E731
    for r in ranks:  # overall scale: a constant factor (e.g. 2 = sum over ranks) is far outside
        assert float(flat(r["grads"]).norm() / flat(single).norm()) == pytest.approx(1.0, abs=1e-4)
