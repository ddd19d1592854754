"""Contrastive fine-tuning of the shared-weight encoder with one batch strategy.

``train(cfg, out_dir)`` trains with InfoNCE over in-batch negatives on the
batches of :class:`lib.sampling.BatchSampler` and writes, into ``out_dir``:

- ``model/``: the checkpoint with the lowest validation loss. When the
  encoder was loaded from ``cfg.backbone`` (the usual case) it is a *compact*
  folder (:mod:`lib.model_store`): the trained tensors plus the backbone's
  identity and the sha256 of the frozen word embeddings, about 85 MB for the
  12-layer embedded backbone instead of 470 MB; ``load_encoder`` reads it,
  ``python -m lib.model_store export`` writes a standalone
  sentence-transformers folder. An encoder passed in by the caller is saved
  in full (``Encoder.save``). Either way the folder carries the run's own
  name (``<backbone name>-<run name>``), the sentence-transformers module
  files and a model card;
- ``last/``: the weights after the last step: ``same_as.json`` pointing at
  ``model/`` when the last step is the best one (or without validation),
  else a second compact (or full) folder;
- ``train_config.json``: every :class:`TrainConfig` field plus run facts
  (written last: its presence marks a finished run);
- ``train_log.csv``: ``step, loss, lr, pairs_per_s, val_loss`` (val_loss
  empty where not evaluated; step 0 holds the untrained model's val loss);
- ``batches.csv``: one row per pair, ``step, batch_kind, dataset, item_id,
  query_lang, doc_lang``.

Optimisation: AdamW (fused kernel where the device has it; no weight decay
on biases and LayerNorm weights), queries and passages embedded in length
buckets (:func:`lib.contrastive.bucketed_embed`; ``train_config.json`` records
both under ``step_implementation``),
``transformers.get_linear_schedule_with_warmup`` (the first step runs at
lr 0 under warm-up, as in the HF Trainer), bf16 autocast when enabled,
embeddings and loss in float32; the loss, one step and the validation loss
are :mod:`lib.contrastive`. Validation: fixed, strategy- and
seed-independent batches from the ``split == "val"`` rows
(:func:`lib.sampling.validation_batches`), model in eval mode, every
``eval_every`` steps and at the end; the untrained model's loss (step 0) is
logged as a reference but never kept as ``model/``.

Resuming: ``out_dir/checkpoint/`` (trainable weights, optimizer, scheduler,
RNG states, step, best validation loss, log) is written every
``checkpoint_every`` steps; rerunning the same config continues from it and
ends with the weights of an uninterrupted run. Batches depend only on the
seed, so they match. Under ``torchrun`` (``WORLD_SIZE > 1``) training is
data-parallel: each rank embeds its slice of every global batch and the
passage embeddings are gathered differentiably, so the negatives are the
whole global batch and the gradients equal the single-process ones.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from lib import machine, models, strategies, training_data
from lib.backbones import load_encoder
from lib.encoder import bf16_supported
from lib.errors import ConfigError, ModelError
from lib.model_store import base_reference, model_card, save_compact, save_same_as
from lib.paths import atomic_write
from lib.contrastive import DualEmbed, adamw, pair_texts, prepare_params, train_step, validation_loss
from lib.sampling import BatchSampler, batches_frame, check_options, validation_batches

LOG_COLUMNS = ["step", "loss", "lr", "pairs_per_s", "val_loss"]


@dataclass
class TrainConfig:
    """Everything that determines a trained model (defaults: study.md section 5 pilot)."""

    backbone: str = "embedded"  # "embedded", a model folder or a hub id
    num_layers: int = 0  # keep the first k transformer layers (0 = all)
    strategy: str = "hybrid"  # mono | cross | hybrid
    alpha: float = 0.5  # share of monolingual batches (lib.strategies rule: 1 for mono, 0 for cross)
    seed: int = 0  # batches, dropout and initial RNG
    steps: int = 120  # optimizer steps
    batch_size: int = 32  # pairs per (global) batch
    lr: float = 3e-5  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW weight decay (not on biases / LayerNorm)
    warmup_steps: int = 10  # linear warm-up, then linear decay to 0
    temperature: float = 0.01  # InfoNCE temperature
    max_query_length: int = 64  # tokens, prefix included
    max_passage_length: int = 96  # tokens, prefix included (paragraph positives are long)
    freeze_word_embeddings: bool = True  # keep the word-embedding matrix fixed
    eval_every: int = 20  # validation loss every k steps (0 = only at the end)
    val_pairs: int = 256  # cap on validation pairs (0 = all)
    bf16: bool | str = "auto"  # bf16 autocast: True, False or "auto" (when the hardware supports it)
    dataset_choice: str = "size"  # how each batch's dataset is drawn: size | uniform
    max_items: int = 0  # items per dataset/language when loading pairs (0 = all)

    def __post_init__(self):
        for name in ("num_layers", "seed", "steps", "batch_size", "warmup_steps", "max_query_length",
                     "max_passage_length", "eval_every", "val_pairs", "max_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"TrainConfig.{name}={value!r}: use a non-negative integer")
            setattr(self, name, int(value))
        for name in ("alpha", "lr", "weight_decay", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ConfigError(f"TrainConfig.{name}={value!r}: use a number")
            setattr(self, name, float(value))
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError(f"TrainConfig.backbone={self.backbone!r}: use 'embedded', a folder or a hub id")
        if not isinstance(self.freeze_word_embeddings, bool):
            raise ConfigError(f"TrainConfig.freeze_word_embeddings={self.freeze_word_embeddings!r}: use True/False")
        if self.bf16 not in (True, False, "auto") or isinstance(self.bf16, (int, float)) \
                and not isinstance(self.bf16, bool):
            raise ConfigError(f"TrainConfig.bf16={self.bf16!r}: use True, False or 'auto'")
        check_options(self.strategy, self.batch_size, self.alpha, self.seed, self.dataset_choice)
        # the share of monolingual batches, by the strategy's rule in lib.strategies: alpha itself for
        # strategies that use it (hybrid), the rule's fixed value otherwise (mono 1, cross 0), so that two
        # runs of one strategy that differ only in an unused alpha are the same run
        self.alpha = strategies.mono_share(self.strategy, self.alpha)
        if self.steps < 1:
            raise ConfigError(f"TrainConfig.steps={self.steps}: train for at least 1 step")
        if self.warmup_steps > self.steps:
            raise ConfigError(f"TrainConfig.warmup_steps={self.warmup_steps} exceeds steps={self.steps}")
        if self.lr <= 0 or self.temperature <= 0 or self.weight_decay < 0:
            raise ConfigError(f"TrainConfig: lr={self.lr}, temperature={self.temperature} must be > 0 and "
                              f"weight_decay={self.weight_decay} >= 0")
        if min(self.max_query_length, self.max_passage_length) < 4:
            raise ConfigError("TrainConfig.max_query_length / max_passage_length must be >= 4 tokens")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build a config, rejecting unknown keys (a typo must not silently train the defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)


def config_from(values: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a notebook's or a profile section's values: every TrainConfig field found in
    ``values`` (e.g. ``globals()`` of notebook 03), the dataclass defaults for the rest; other keys ignored."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in names})


def run_name(cfg: TrainConfig) -> str:
    """Folder name of a run, e.g. ``hybrid_a0.5_s0`` or ``mono_s1_L6``."""
    return models.run_name(cfg.strategy, cfg.alpha, cfg.seed, cfg.num_layers)


# ---------------------------------------------------------------- run folder


def _saved_config(path: Path) -> dict:
    values = json.loads(path.read_text())
    return {f.name: values.get(f.name) for f in dataclasses.fields(TrainConfig)}


def _folder_state(cfg: TrainConfig, out_dir: Path) -> str:
    """'finished', 'resume' or 'fresh'; ConfigError when out_dir holds another config."""
    mine = cfg.to_dict()
    for marker in (out_dir / "train_config.json", out_dir / "checkpoint" / "train_config.json"):
        if marker.is_file() and _saved_config(marker) != mine:
            theirs = _saved_config(marker)
            diff = {k: (theirs[k], mine[k]) for k in mine if theirs[k] != mine[k]}
            raise ConfigError(f"{out_dir} holds a run with another config (saved, requested): {diff}. "
                              "Remove that folder or use another profile / output folder")
    if models.is_finished(out_dir):  # with its weights, or its record where they stayed on another machine
        return "finished"
    if (out_dir / "checkpoint" / "state.pt").is_file():
        return "resume"
    return "fresh"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


def _write_json(values: dict, path: Path) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(values, indent=2) + "\n")


# ------------------------------------------------------------- distributed


def _dist_setup() -> tuple[int, int, bool]:
    """(rank, world_size, owned): joins torchrun's process group when WORLD_SIZE > 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def _device(world: int) -> torch.device:
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)


def _use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.bf16 != "auto":
        return bool(cfg.bf16)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bf16_supported()


# ------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(out_dir: Path, cfg: TrainConfig, encoder, optimizer, scheduler, state: dict,
                     rng_states: list[dict]) -> None:
    trainable = {n: p.detach().cpu() for n, p in encoder.model.named_parameters() if p.requires_grad}
    with atomic_write(out_dir / "checkpoint") as tmp:
        tmp.mkdir()
        torch.save({**state, "model": trainable, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": rng_states}, tmp / "state.pt")
        (tmp / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def _load_checkpoint(out_dir: Path, encoder, optimizer, scheduler, rank: int) -> dict:
    ckpt = torch.load(out_dir / "checkpoint" / "state.pt", map_location="cpu", weights_only=False)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if len(ckpt["rng"]) != world:
        raise ConfigError(f"{out_dir / 'checkpoint'} was written by {len(ckpt['rng'])} process(es), this run has "
                          f"{world}: resume with the same number of processes or remove the checkpoint folder")
    params = dict(encoder.model.named_parameters())
    with torch.no_grad():
        for name, value in ckpt["model"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    _set_rng_state(ckpt["rng"][rank])
    return ckpt


# ------------------------------------------------------------------- train


def train(cfg: TrainConfig, out_dir: str | os.PathLike, pairs: pd.DataFrame | None = None, encoder=None,
          progress: bool = True, checkpoint_every: int = 20,
          callback: Callable[[int, dict], None] | None = None) -> Path:
    """Train one model into ``out_dir`` (see the module docstring) and return ``out_dir``.

    ``pairs`` defaults to ``lib.training_data.load_training_pairs(cfg.max_items)``;
    ``encoder`` to ``lib.backbones.load_encoder(cfg.backbone, cfg.num_layers)``
    (a given encoder is trained in place). ``checkpoint_every`` (0 = never)
    sets how often a resumable checkpoint is written; ``callback(step,
    log_row)`` runs after every step. A finished run with the same config
    is reused without training.
    """
    out_dir = Path(out_dir)
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every={checkpoint_every!r}: use a non-negative integer (0 = never)")
    state = _folder_state(cfg, out_dir)
    if state == "finished":
        where = "" if models.has_weights(out_dir) else " (its record and results; the weights stayed where it was trained)"
        print(f"reusing the finished run in {out_dir}{where} (same config); remove the folder to retrain")
        return out_dir
    rank, world, owned = _dist_setup()
    result = _train(cfg, out_dir, pairs, encoder, progress, checkpoint_every, callback, state, rank, world)
    if owned:  # not after an error: the other ranks may be stuck in a collective; exiting ends the group
        dist.destroy_process_group()
    return result


def _train(cfg, out_dir, pairs, encoder, progress, checkpoint_every, callback, state, rank, world) -> Path:
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size={cfg.batch_size} is the global batch: it must divide by the "
                          f"{world} processes (WORLD_SIZE); pick a multiple of {world}")
    if pairs is None:
        pairs = training_data.load_training_pairs(max_items=cfg.max_items)
    pairs = pairs.reset_index(drop=True)
    # On the full data a language pool smaller than one batch is a configuration error; on a
    # deliberate subsample (max_items > 0, e.g. the smoke profile) such pools are skipped with a warning.
    sampler = BatchSampler(pairs, cfg.strategy, cfg.batch_size, cfg.alpha, cfg.seed, cfg.dataset_choice,
                           small_pools="skip" if cfg.max_items else "error")
    batches = sampler.batches(cfg.steps)
    val = validation_batches(pairs, cfg.batch_size, cfg.val_pairs)
    loaded_here = encoder is None
    if encoder is None:
        encoder = load_encoder(cfg.backbone, cfg.num_layers)
    device = _device(world)
    bf16 = _use_bf16(cfg, device)
    from transformers import get_linear_schedule_with_warmup, set_seed  # lazy: importing lib.training skips it
    set_seed(cfg.seed + rank)
    encoder.model.to(device)
    optimizer = adamw(prepare_params(encoder, cfg), cfg.lr)
    saver = _ModelSaver(encoder, cfg, base=loaded_here and rank == 0)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    run = {"step": 0, "best_val": float("inf"), "best_step": -1, "log": [], "train_seconds": 0.0, "machines": []}
    if state == "resume":
        ckpt = _load_checkpoint(out_dir, encoder, optimizer, scheduler, rank)
        run = {k: ckpt.get(k, run[k]) for k in run}  # "machines": absent from checkpoints written before it
        if rank == 0:
            print(f"resuming {out_dir} from step {run['step']}")
    here = {"cpu_model": machine.cpu_model(), "precision": "bf16" if bf16 else "fp32"}
    if here not in run["machines"]:  # train_seconds may add up time from more than one machine
        run["machines"] = [*run["machines"], here]
    dual = DualEmbed(encoder)
    module = torch.nn.parallel.DistributedDataParallel(dual) if world > 1 else dual
    n_local = cfg.batch_size // world
    main = rank == 0

    def evaluate(step: int) -> float | None:
        """Validation loss; from step 1 on, a new lowest one saves model/ (step 0 is a reference)."""
        if not (main and val):
            return None
        loss = validation_loss(encoder, pairs, val, cfg, bf16, device)
        if step > 0 and loss < run["best_val"]:
            run["best_val"], run["best_step"] = loss, step
            saver.save(out_dir / "model", {"best_step": step, "best_val_loss": loss})
        return loss

    if run["step"] == 0 and not run["log"]:
        run["log"].append({"step": 0, "loss": None, "lr": 0.0, "pairs_per_s": None, "val_loss": evaluate(0)})
    encoder.model.train()
    bar = tqdm(total=cfg.steps, initial=run["step"], disable=not (progress and main), desc=run_name(cfg),
               unit="step")
    for step in range(run["step"] + 1, cfg.steps + 1):
        t0 = time.perf_counter()
        rows = batches[step - 1].indices[rank * n_local:(rank + 1) * n_local]
        lr = scheduler.get_last_lr()[0]
        loss = train_step(module, encoder, pair_texts(pairs, rows, "query"), pair_texts(pairs, rows, "passage"),
                          cfg, optimizer, bf16, device)
        scheduler.step()
        shown = loss.detach()
        if world > 1:
            dist.all_reduce(shown)
            shown = shown / world
        seconds = time.perf_counter() - t0
        run["train_seconds"] += seconds
        row = {"step": step, "loss": float(shown), "lr": lr, "pairs_per_s": cfg.batch_size / seconds,
               "val_loss": None}
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
            row["val_loss"] = evaluate(step)
        run["log"].append(row)
        run["step"] = step
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", pairs_per_s=f"{row['pairs_per_s']:.1f}")
        if checkpoint_every and step % checkpoint_every == 0 and step < cfg.steps:
            rng = [_rng_state()]
            if world > 1:
                rng = [None] * world
                dist.all_gather_object(rng, _rng_state())
            if main:
                _save_checkpoint(out_dir, cfg, encoder, optimizer, scheduler, run, rng)
        if callback is not None:
            callback(step, row)
    bar.close()
    encoder.model.eval()
    if main:
        step_impl = {"optimizer": "AdamW (fused)" if optimizer.defaults.get("fused") else "AdamW",
                     "length_bucket_overhead_tokens": dual.overhead_tokens}
        _finish(cfg, out_dir, pairs, batches, saver, run, bf16, world, device, bool(val), sampler.skipped,
                step_impl)
    if world > 1:
        dist.barrier()
    encoder.model.to("cpu")
    return out_dir


def run_batches(out_dir: str | os.PathLike) -> pd.DataFrame:
    """A finished run's ``batches.csv``; where it is missing (it stays out of git: the run's record, config and
    log travel with the results) it is drawn again from the saved config, as the run drew it (the sampler is
    seeded), and written."""
    out_dir = Path(out_dir)
    path = out_dir / "batches.csv"
    if not path.is_file():
        cfg = config_from(_saved_config(out_dir / "train_config.json"))
        pairs = training_data.load_training_pairs(max_items=cfg.max_items).reset_index(drop=True)
        sampler = BatchSampler(pairs, cfg.strategy, cfg.batch_size, cfg.alpha, cfg.seed, cfg.dataset_choice,
                               small_pools="skip" if cfg.max_items else "error")
        _write_csv(batches_frame(pairs, sampler.batches(cfg.steps)), path)
    return pd.read_csv(path, dtype={"item_id": str})


class _ModelSaver:
    """Writes model/ and last/: compact when the encoder came from ``cfg.backbone``, else in full."""

    def __init__(self, encoder, cfg: TrainConfig, base: bool):
        self.encoder, self.cfg = encoder, cfg
        self.name = f"{encoder.name or cfg.backbone}-{run_name(cfg)}".replace("/", "_")
        self.base = None
        if base:
            self.base = base_reference(encoder, cfg.backbone, cfg.num_layers)  # frozen tensors hashed once

    def save(self, folder: Path, facts: dict) -> None:
        card = model_card(self.name, self.cfg.to_dict(), base=self.base or {}, facts=facts,
                          compact=self.base is not None)
        if self.base is not None:
            save_compact(self.encoder, folder, self.base, name=self.name, card=card)
            return
        named = copy.copy(self.encoder)
        named.name = self.name
        named.save(folder)
        (folder / "README.md").write_text(card)


def _finish(cfg, out_dir, pairs, batches, saver, run, bf16, world, device, has_val, skipped,
            step_impl: dict) -> None:
    """Write model/ (if no validation), last/, logs, batches and, last, train_config.json."""
    if not has_val:
        print("no validation pairs (split == 'val'): model/ is the last checkpoint")
        saver.save(out_dir / "model", {"best_step": cfg.steps})
    if not has_val or run["best_step"] == cfg.steps:
        save_same_as(out_dir / "last", "model", f"step {cfg.steps} is also model/'s step")
    else:
        saver.save(out_dir / "last", {"last_step": cfg.steps})
    _write_csv(pd.DataFrame(run["log"], columns=LOG_COLUMNS), out_dir / "train_log.csv")
    _write_csv(batches_frame(pairs, batches), out_dir / "batches.csv")
    facts = {"run_name": run_name(cfg), "bf16_used": bf16, "world_size": world, "device": str(device),
             "best_step": run["best_step"], "best_val_loss": run["best_val"] if has_val else None,
             "train_seconds": round(run["train_seconds"], 2),
             "train_pairs": int((pairs["split"] == "train").sum()) if "split" in pairs else len(pairs),
             "skipped_pools": skipped, "torch": torch.__version__,
             "cpu_model": " + ".join(dict.fromkeys(m["cpu_model"] for m in run["machines"])),
             "precision": " + ".join(dict.fromkeys(m["precision"] for m in run["machines"])),
             "machines": run["machines"], "step_implementation": step_impl}
    _write_json({**cfg.to_dict(), **facts}, out_dir / "train_config.json")
    models.write_record(out_dir)  # the run's identity without its weights (travels with the results, lib.models)
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)


# ---------------------------------------------------------------- weights trained elsewhere

RESTORE_DIR = "restore"  # results/<profile>/restore/<run>/: where restore_weights trains (resumable; not in git)
_SAME_COLUMNS = ["step", "loss", "lr", "val_loss"]  # pairs_per_s is a timing, not the run


def _log_difference(recorded: pd.DataFrame, again: pd.DataFrame) -> str | None:
    """None when the two training logs are the same run to the last bit, else what differs first."""
    if list(recorded["step"]) != list(again["step"]):
        return f"steps {list(recorded['step'])[:5]}... against {list(again['step'])[:5]}..."
    for column in _SAME_COLUMNS[1:]:
        a, b = recorded[column].to_numpy(float), again[column].to_numpy(float)
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            return (f"{column} first differs at step {int(recorded['step'].iloc[first])}: recorded {a[first]!r}, "
                    f"again {b[first]!r} ({int(differ.sum())} of {len(a)} rows differ)")
    return None


def restore_weights(run_dir: str | os.PathLike, work_dir: str | os.PathLike | None = None,
                    pairs: pd.DataFrame | None = None, encoder=None, progress: bool = True) -> dict:
    """Bring back the weights of a finished run that came without them (its ``record.json``, logs and
    results are here; the weights stayed on the machine that trained it) by training it again, and adopt
    them as that run's only when the new training is the same run: every step's loss and learning rate and
    every validation loss equal to the recorded ``train_log.csv`` to the last bit, and the same kept step.
    Then ``model/``, ``last/`` and ``batches.csv`` move into the run folder with ``restored.json``
    (:func:`lib.models.write_restored`), so the run keeps its recorded fingerprints and every carried
    result stays its own; what needs the weights (notebook 06) can use them.

    The training goes to ``work_dir`` (default ``results/<profile>/restore/<run>/``; resumable, removed
    when done). When the logs differ (another CPU kind or precision, another library version) a
    ``ModelError`` says where, the run folder is left as it was and the new training is kept in
    ``work_dir`` for a look. ``pairs`` / ``encoder`` as for :func:`train` (tests). Returns a summary."""
    run_dir = Path(run_dir)
    if not (run_dir / "train_config.json").is_file():
        runs = sorted(p.name for p in run_dir.parent.glob("*") if models.is_finished(p))
        raise ModelError(f"{run_dir} is not a run folder (no train_config.json); the runs beside it: "
                         f"{', '.join(runs) or 'none'}")
    work = Path(work_dir) if work_dir is not None else run_dir.parent.parent / RESTORE_DIR / run_dir.name
    if models.has_weights(run_dir) and not work.exists():
        return {"run": run_dir.name, "restored": False, "why": "its weights are here"}
    record = models.read_record(run_dir)  # ModelError when the run did not finish
    saved = json.loads((run_dir / "train_config.json").read_text())
    cfg = config_from(saved)
    train(cfg, work, pairs=pairs, encoder=encoder, progress=progress)
    again = json.loads((work / "train_config.json").read_text())
    recorded_log, new_log = pd.read_csv(run_dir / "train_log.csv"), pd.read_csv(work / "train_log.csv")
    differ = _log_difference(recorded_log, new_log)
    if differ is None and again.get("best_step") != saved.get("best_step"):
        differ = f"kept step {again.get('best_step')} against the recorded {saved.get('best_step')}"
    if differ is None and models.read_record(work)["last"]["same_as_kept"] != record["last"]["same_as_kept"]:
        differ = "the last step is the kept one in one training and not in the other"
    if differ is not None:
        raise ModelError(
            f"{run_dir.name}: training it again here is not the recorded run ({differ}; recorded on "
            f"{saved.get('cpu_model')} in {saved.get('precision')}, here {again.get('cpu_model')} in "
            f"{again.get('precision')}). {run_dir} is left as it was; the new training is in {work}. Train it "
            "on a machine of the recorded kind, or retrain it as a new run (move the run folder aside and run "
            "notebook 03 for it again, then re-run notebooks 04-08)")
    parts = ["model"] + ([] if models.last_is_kept(work) else ["last"])
    evidence = {"train_log_rows": len(recorded_log), "validation_points": int(recorded_log["val_loss"].notna().sum()),
                "compared": _SAME_COLUMNS, "best_step": saved.get("best_step"),
                "cpu_model": again.get("cpu_model"), "precision": again.get("precision"),
                "torch": again.get("torch"), "train_seconds": again.get("train_seconds"),
                "restored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not models.has_weights(run_dir):  # else a resumed move: restored.json was written before it began
        models.write_restored(run_dir, {p: work / p for p in parts}, evidence)
    for part in ("model", "last", "batches.csv"):  # renames keep the folders' fingerprints
        if (work / part).exists() and not (run_dir / part).exists():
            os.replace(work / part, run_dir / part)
    shutil.rmtree(work)
    return {"run": run_dir.name, "restored": True, **evidence}


def main(argv: list[str] | None = None) -> int:
    """``python -m lib.training restore PROFILE RUN [RUN ...]``: :func:`restore_weights` for each run."""
    import argparse

    from lib.errors import StudyError
    from lib.paths import results_dir

    parser = argparse.ArgumentParser(prog="python -m lib.training", description=restore_weights.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    restore = sub.add_parser("restore", help="train runs again whose weights stayed where they were trained")
    restore.add_argument("profile", help="results/<profile>/ holds the runs")
    restore.add_argument("runs", nargs="+", help="run names (folders in results/<profile>/models/)")
    args = parser.parse_args(argv)
    status = 0
    for name in args.runs:
        run_dir = results_dir(args.profile) / "models" / name
        try:
            done = restore_weights(run_dir)
        except StudyError as exc:
            print(f"error: {exc}")
            status = 1
            continue
        if done["restored"]:
            print(f"{name}: restored (trained again in {done['train_seconds']:.0f} s, {done['cpu_model']}, "
                  f"{done['precision']}); "
                  f"{done['train_log_rows']} log rows and {done['validation_points']} validation losses equal "
                  "the recorded ones to the last bit")
        else:
            print(f"{name}: nothing to do ({done['why']})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
