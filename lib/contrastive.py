"""The contrastive objective and one optimisation step, for :func:`lib.training.train`.

InfoNCE over in-batch negatives (:func:`info_nce`), one forward for queries
and passages (:class:`DualEmbed`, what DistributedDataParallel wraps), the
differentiable gather of every rank's passages under a process group, the
AdamW parameter groups (:func:`prepare_params`), one step on a batch
(:func:`train_step`) and the validation loss (:func:`validation_loss`).
``cfg`` is a :class:`lib.training.TrainConfig`; these functions read its
``temperature``, ``max_query_length``, ``max_passage_length``,
``freeze_word_embeddings`` and ``weight_decay``.
"""
from __future__ import annotations

import warnings

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F

from lib.errors import ConfigError


def info_nce(q: torch.Tensor, p: torch.Tensor, temperature: float,
             labels: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of each query over all passages, scores ``q @ p.T / temperature``.

    The positive of query i is passage ``labels[i]`` (default: i, the
    diagonal); every other passage is a negative.
    """
    if q.ndim != 2 or p.ndim != 2 or q.shape[1] != p.shape[1]:
        raise ConfigError(f"info_nce: q {tuple(q.shape)} and p {tuple(p.shape)} must be (n, d) and (m, d)")
    if labels is None:
        if p.shape[0] < q.shape[0]:
            raise ConfigError(f"info_nce: {q.shape[0]} queries but only {p.shape[0]} passages")
        labels = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(q @ p.T / temperature, labels)


class DualEmbed(torch.nn.Module):
    """One forward for queries and passages, so DistributedDataParallel sees one call per step."""

    def __init__(self, encoder):
        super().__init__()
        self.model = encoder.model
        self.encoder = [encoder]  # a list keeps the encoder out of the module tree

    def forward(self, queries: dict, passages: dict):
        enc = self.encoder[0]
        return enc.embed(queries), enc.embed(passages)


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` in rank order; the backward sums the gradients per rank."""
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API; still correct
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), 0)


def prepare_params(encoder, cfg) -> list[dict]:
    """Set requires_grad (word embeddings frozen or not); AdamW groups with/without decay."""
    for p in encoder.model.parameters():
        p.requires_grad_(True)
    if cfg.freeze_word_embeddings:
        encoder.model.get_input_embeddings().weight.requires_grad_(False)
    trainable = [p for p in encoder.model.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]


def pair_texts(pairs: pd.DataFrame, rows, column: str) -> list[str]:
    """The ``query`` or ``passage`` texts of ``rows`` (positions in ``pairs``)."""
    return pairs[column].iloc[list(rows)].astype(str).tolist()


@torch.no_grad()
def validation_loss(encoder, pairs: pd.DataFrame, batches: list[tuple[int, ...]], cfg,
                    bf16: bool, device: torch.device) -> float:
    """Mean InfoNCE per pair over fixed validation batches, model in eval mode (no dropout)."""
    was_training = encoder.model.training
    encoder.model.eval()
    total, count = 0.0, 0
    try:
        for rows in batches:
            q = {k: v.to(device) for k, v in encoder.tokenize(pair_texts(pairs, rows, "query"), "query",
                                                               cfg.max_query_length).items()}
            p = {k: v.to(device) for k, v in encoder.tokenize(pair_texts(pairs, rows, "passage"), "passage",
                                                               cfg.max_passage_length).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                qe, pe = encoder.embed(q), encoder.embed(p)
            total += float(info_nce(qe.float(), pe.float(), cfg.temperature)) * len(rows)
            count += len(rows)
    finally:
        encoder.model.train(was_training)
    return total / count if count else float("nan")


def train_step(module, encoder, queries: list[str], passages: list[str], cfg, optimizer,
               bf16: bool, device: torch.device) -> torch.Tensor:
    """One optimizer step on a (local slice of a) batch; returns the local loss.

    ``module`` is a :class:`DualEmbed` (or its DistributedDataParallel
    wrapper); under a process group the passage embeddings of all ranks are
    the negatives of every local query.
    """
    q = {k: v.to(device) for k, v in encoder.tokenize(queries, "query", cfg.max_query_length).items()}
    p = {k: v.to(device) for k, v in encoder.tokenize(passages, "passage", cfg.max_passage_length).items()}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        qe, pe = module(q, p)
    qe, pe = qe.float(), pe.float()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        labels = torch.arange(len(qe), device=device) + dist.get_rank() * len(qe)
        loss = info_nce(qe, _gather(pe), cfg.temperature, labels)
    else:
        loss = info_nce(qe, pe, cfg.temperature)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()
