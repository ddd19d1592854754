"""The contrastive objective and one optimisation step, for :func:`lib.training.train`.

InfoNCE over in-batch negatives (:func:`info_nce`), one forward for queries
and passages (:class:`DualEmbed`, what DistributedDataParallel wraps) that
embeds each in length buckets (:func:`length_buckets`, :func:`bucketed_embed`:
a batch padded to its longest text spends a fifth of its tokens on padding), the
differentiable gather of every rank's passages under a process group, the
AdamW parameter groups (:func:`prepare_params`) and optimizer (:func:`adamw`), one step on a batch
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


BUCKET_OVERHEAD_TOKENS = 64
"""What one more forward call costs, in padded tokens (Python and kernel start-up of every layer, and
smaller matrix products); :func:`length_buckets` opens a bucket only when it saves more than this."""


def length_buckets(lengths, overhead_tokens: int = BUCKET_OVERHEAD_TOKENS) -> list[tuple[int, int]]:
    """Split lengths sorted longest first into runs ``[a, b)`` that minimise padded tokens plus overhead.

    A run is padded to its first (longest) length, so its cost is ``lengths[a] * (b - a)`` plus
    ``overhead_tokens``; the split is exact (dynamic programming over the cut points).
    """
    lengths = [int(x) for x in lengths]
    if any(a < b for a, b in zip(lengths, lengths[1:])):
        raise ConfigError(f"length_buckets: lengths must be sorted longest first, got {lengths}")
    if overhead_tokens < 0:
        raise ConfigError(f"length_buckets: overhead_tokens={overhead_tokens} must be >= 0")
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[j]: cheapest split of lengths[:j]
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for a in range(j):
            cost = best[a] + lengths[a] * (j - a) + overhead_tokens
            if cost < best[j]:
                best[j], cut[j] = cost, a
    spans, j = [], n
    while j > 0:
        spans.append((cut[j], j))
        j = cut[j]
    return spans[::-1]


def computed_lengths(lengths, overhead_tokens: int = BUCKET_OVERHEAD_TOKENS) -> list[int]:
    """The length each text is padded to under :func:`length_buckets` (longest first): what a bucketed
    forward computes, for counting tokens and FLOPs."""
    desc = sorted((int(x) for x in lengths), reverse=True)
    return [desc[a] for a, b in length_buckets(desc, overhead_tokens) for _ in range(b - a)]


def bucketed_embed(encoder, batch: dict[str, torch.Tensor],
                   overhead_tokens: int = BUCKET_OVERHEAD_TOKENS) -> torch.Tensor:
    """``encoder.embed(batch)``, computed bucket by bucket (:func:`length_buckets`), rows in input order.

    Each text's embedding depends on its own tokens only (padding is masked and pooling skips it), so
    cutting the right padding of a bucket changes no embedding beyond rounding; gradients flow through
    as through one call. A left-padding tokenizer gets one call.
    """
    mask = batch["attention_mask"]
    if getattr(encoder.tokenizer, "padding_side", "right") != "right" or len(mask) < 2:
        return encoder.embed(batch)
    lengths = mask.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    spans = length_buckets(lengths[order].tolist(), overhead_tokens)
    if len(spans) == 1:
        return encoder.embed(batch)
    parts = []
    for a, b in spans:
        rows = order[a:b]
        width = int(lengths[rows[0]])
        parts.append(encoder.embed({k: v[rows, :width] for k, v in batch.items()}))
    return torch.cat(parts)[torch.argsort(order)]


class DualEmbed(torch.nn.Module):
    """One forward for queries and passages, so DistributedDataParallel sees one call per step."""

    def __init__(self, encoder, overhead_tokens: int = BUCKET_OVERHEAD_TOKENS):
        super().__init__()
        self.model = encoder.model
        self.encoder = [encoder]  # a list keeps the encoder out of the module tree
        self.overhead_tokens = overhead_tokens

    def forward(self, queries: dict, passages: dict):
        enc = self.encoder[0]
        return (bucketed_embed(enc, queries, self.overhead_tokens),
                bucketed_embed(enc, passages, self.overhead_tokens))


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


def adamw(groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW over ``groups``, with the fused kernel (one pass over each tensor instead of about ten)
    where every parameter lives on a device that has it (CPU, CUDA)."""
    devices = {p.device.type for g in groups for p in g["params"]}
    if devices and devices <= {"cpu", "cuda"}:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    return torch.optim.AdamW(groups, lr=lr)


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
                qe, pe = bucketed_embed(encoder, q), bucketed_embed(encoder, p)
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
