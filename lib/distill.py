"""Small students of the embedded backbone, distilled offline: the size axis of research question 2.

Cutting a pretrained encoder's top layers damages it (notebook 07: untuned
MLQARetrieval nDCG@10 .071 and .132 at 3 and 6 layers against .733 at 12).
A student made the usual way starts as a working encoder instead: copy the
teacher's embeddings and a chosen subset of its layers (evenly spaced, the
last one included, in the spirit of MiniLM-style layer selection), then
train it to reproduce the teacher's pooled, normalised embeddings of the
same texts (mean squared error between unit vectors, i.e. 2 - 2 cos), with
the teacher's embeddings computed once and cached.

The texts are the training side of the mirror only: the questions and
passages of the training split of ``lib.training_data.load_training_pairs`` (MLQA
test recombined, TyDi QA), each with its role prefix. XQuAD-R, MLQA-R, the
MLQA dev set (MLQARetrieval) and DuReader are never read
(:func:`distillation_texts` refuses any other source).

    python -m lib.distill --layers 3 6            # students under $HBT_CACHE_DIR/models/distilled-L<k>
    python -m lib.distill --layers 3 --steps 200  # a quick one

A student folder loads like any backbone (``load_encoder(folder)``, or the
backbone name ``distilled-L3`` once it exists) and holds ``recipe.json``:
teacher, copied layers, texts, steps, learning rate, loss curve, time.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lib.backbones import distilled_dir, load_encoder
from lib.encoder import bf16_supported
from lib import machine, training_data
from lib.errors import ConfigError, DataError
from lib.paths import CACHE_DIR, atomic_write

TRAINING_SOURCES = ("mlqa_test", "tydiqa")  # the only datasets a student may learn from


@dataclass
class DistillConfig:
    layers: int = 3  # student depth
    init_layers: tuple[int, ...] = ()  # teacher layers copied into the student (default: evenly spaced)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-4
    warmup_steps: int = 100
    max_length: int = 128
    max_texts: int = 0  # distinct texts used (0 = all of the training split)
    held_out: int = 512  # texts kept aside to report the student's cosine to the teacher
    eval_every: int = 250
    seed: int = 0
    bf16: bool | str = "auto"

    def __post_init__(self):
        for name in ("layers", "steps", "batch_size", "warmup_steps", "max_length", "max_texts", "held_out",
                     "eval_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"DistillConfig.{name}={value!r}: use a non-negative integer")
        if self.layers < 1 or self.steps < 1 or self.batch_size < 2:
            raise ConfigError(f"DistillConfig: layers={self.layers}, steps={self.steps} must be >= 1 and "
                              f"batch_size={self.batch_size} >= 2")
        if self.init_layers and len(self.init_layers) != self.layers:
            raise ConfigError(f"DistillConfig.init_layers={self.init_layers}: give exactly {self.layers} teacher "
                              "layers, or none for evenly spaced ones")
        self.init_layers = tuple(int(i) for i in self.init_layers)


def student_name(layers: int) -> str:
    return f"distilled-L{layers}"


def student_dir(layers: int) -> Path:
    return distilled_dir(student_name(layers))


def spaced_layers(teacher_depth: int, layers: int) -> tuple[int, ...]:
    """``layers`` teacher layer indices, evenly spaced, the last layer included (e.g. 12 -> 3: 3, 7, 11)."""
    if not 1 <= layers <= teacher_depth:
        raise ConfigError(f"a student of {layers} layers from a teacher of {teacher_depth}: use 1..{teacher_depth}")
    step = teacher_depth / layers
    return tuple(int(round(step * (i + 1))) - 1 for i in range(layers))


def distillation_texts(pairs: pd.DataFrame | None = None, max_texts: int = 0, seed: int = 0) -> pd.DataFrame:
    """Distinct training-split texts with their role: columns ``text``, ``role``, ``dataset``.

    ``pairs`` defaults to ``lib.training_data.load_training_pairs()``; rows of any dataset
    other than :data:`TRAINING_SOURCES` or of the validation split are refused /
    left out, so no evaluation text can reach a student.
    """
    if pairs is None:
        pairs = training_data.load_training_pairs()
    other = sorted(set(pairs["dataset"]) - set(TRAINING_SOURCES))
    if other:
        raise DataError(f"distillation texts: dataset(s) {other} are not training data; a student learns only "
                        f"from {TRAINING_SOURCES}")
    if "split" in pairs.columns:
        pairs = pairs[pairs["split"] == "train"]
    frame = pd.concat([pd.DataFrame({"text": pairs["query"], "role": "query", "dataset": pairs["dataset"]}),
                       pd.DataFrame({"text": pairs["passage"], "role": "passage", "dataset": pairs["dataset"]})])
    frame = frame.dropna(subset=["text"]).drop_duplicates(["text", "role"]).reset_index(drop=True)
    if max_texts and len(frame) > max_texts:
        frame = frame.sample(n=max_texts, random_state=seed).reset_index(drop=True)
    return frame


def _fingerprint(frame: pd.DataFrame, teacher_info: str, max_length: int) -> str:
    h = hashlib.sha256(f"{teacher_info}|{max_length}".encode())
    for text, role in zip(frame["text"], frame["role"]):
        h.update(f"{role}\x00{text}\x01".encode())
    return h.hexdigest()[:16]


def teacher_embeddings(teacher, frame: pd.DataFrame, max_length: int = 128, cache: Path | None = None,
                       progress: bool = True) -> np.ndarray:
    """The teacher's embeddings of every row (queries with the query prefix, passages with the passage
    prefix), in row order; cached under ``cache`` by a fingerprint of the texts and the teacher."""
    info = json.dumps(teacher.info, sort_keys=True) + teacher.name
    path = (cache or CACHE_DIR / "distill") / f"teacher_{_fingerprint(frame, info, max_length)}.npy"
    if path.is_file():
        out = np.load(path)
        if out.shape == (len(frame), teacher.dim):
            return out
    out = _encode_by_role(teacher, frame, max_length, progress)
    with atomic_write(path) as tmp:  # the name ends in .npy, so np.save keeps it
        np.save(tmp, out)
    return out


def init_student(teacher, layers: tuple[int, ...], name: str):
    """A copy of the teacher keeping only ``layers`` (teacher indices, in order)."""
    student = copy.deepcopy(teacher)
    blocks = student.model.encoder.layer
    depth = len(blocks)
    if any(not 0 <= i < depth for i in layers) or list(layers) != sorted(set(layers)):
        raise ConfigError(f"init_layers={layers}: distinct increasing teacher layers in 0..{depth - 1}")
    student.model.encoder.layer = torch.nn.ModuleList([blocks[i] for i in layers])
    student.model.config.num_hidden_layers = len(layers)
    if isinstance(getattr(student.model.config, "layer_types", None), list):
        student.model.config.layer_types = [student.model.config.layer_types[i] for i in layers]
    student.name = name
    student.info = {**teacher.info, "distilled_from": teacher.name, "teacher_layers": list(layers)}
    return student


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    order, out = rng.permutation(n), []
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        out.append(order[pos:pos + batch_size])
        pos += batch_size
    return out


def _encode_by_role(encoder, frame: pd.DataFrame, max_length: int, progress: bool) -> np.ndarray:
    """Embeddings of every row in row order, each text encoded with its row's role prefix."""
    out = np.empty((len(frame), encoder.dim), dtype=np.float32)
    for role in ("query", "passage"):
        rows = np.flatnonzero(frame["role"].to_numpy() == role)
        if len(rows):
            out[rows] = encoder.encode(frame["text"].iloc[rows].tolist(), role, max_length=max_length,
                                       progress=progress)
    return out


def _cosine(student, frame: pd.DataFrame, target: np.ndarray, max_length: int) -> float:
    got = _encode_by_role(student, frame, max_length, progress=False)
    return float(np.mean(np.sum(got * target, axis=1)))


def checkpoint_dir(out_dir: Path) -> Path:
    """Where an unfinished distillation keeps its state (beside ``out_dir``, removed when it finishes)."""
    return out_dir.parent / f".{out_dir.name}.checkpoint"


def _save_checkpoint(folder: Path, state: dict) -> None:
    with atomic_write(folder) as tmp:
        tmp.mkdir()
        torch.save(state, tmp / "state.pt")


def _load_checkpoint(folder: Path, key: dict) -> dict | None:
    """The saved state when it belongs to this distillation (same config, teacher and texts), else None."""
    path = folder / "state.pt"
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("key") != key:
        warnings.warn(f"{folder} belongs to another distillation (config, teacher or texts differ); "
                      "starting from the beginning", stacklevel=3)
        return None
    return state


def distill(cfg: DistillConfig, out_dir: str | Path, teacher=None, texts: pd.DataFrame | None = None,
            cache: Path | None = None, progress: bool = True, checkpoint_every: int = 100) -> Path:
    """Train one student into ``out_dir`` (``Encoder.save`` layout plus ``recipe.json``).

    Every ``checkpoint_every`` steps the trainable weights, optimizer, schedule,
    random state and log are saved beside ``out_dir`` (:func:`checkpoint_dir`);
    a later call with the same config, teacher and texts resumes from there and
    ends with the same student as an uninterrupted run. ``seconds`` in the recipe
    adds up the time of every part.
    """
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    teacher = teacher if teacher is not None else load_encoder("embedded")
    depth = int(teacher.model.config.num_hidden_layers)
    chosen = cfg.init_layers or spaced_layers(depth, cfg.layers)
    frame = texts if texts is not None else distillation_texts(max_texts=cfg.max_texts, seed=cfg.seed)
    if len(frame) <= cfg.held_out + cfg.batch_size:
        raise DataError(f"distillation: {len(frame)} texts, need more than held_out + batch_size = "
                        f"{cfg.held_out + cfg.batch_size}")
    target = teacher_embeddings(teacher, frame, cfg.max_length, cache, progress)
    held, train_rows = np.arange(cfg.held_out), np.arange(cfg.held_out, len(frame))
    student = init_student(teacher, chosen, student_name(cfg.layers))
    model = student.model
    model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps)
    use_bf16 = bf16_supported() if cfg.bf16 == "auto" else bool(cfg.bf16)
    torch.manual_seed(cfg.seed)
    ckpt_dir = checkpoint_dir(out_dir)
    key = {"config": dataclasses.asdict(cfg), "teacher": teacher.name,
           "teacher_info": json.dumps(teacher.info, sort_keys=True), "layers": list(chosen),
           "texts": _fingerprint(frame, "", cfg.max_length), "bf16": use_bf16}
    key["config"]["init_layers"] = list(cfg.init_layers)
    saved = _load_checkpoint(ckpt_dir, key)
    if saved is not None:
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in saved["model"].items():
                named[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        log, done, earlier = saved["log"], int(saved["step"]), float(saved["seconds"])
        if progress:
            print(f"{student.name}: resuming from step {done} of {cfg.steps} ({ckpt_dir})")
    else:
        log = [{"step": 0, "loss": None, "held_out_cosine": _cosine(student, frame.iloc[held], target[held],
                                                                      cfg.max_length)}]
        done, earlier = 0, 0.0
    roles = frame["role"].to_numpy()
    model.train()
    bar = tqdm(range(done + 1, cfg.steps + 1), disable=not progress, desc=student.name, unit="step",
               initial=done, total=cfg.steps)
    batches = _batches(len(train_rows), cfg.batch_size, cfg.steps, cfg.seed)[done:]
    for step, rows in zip(bar, batches):
        rows = train_rows[rows]
        loss = torch.zeros(())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            for role in ("query", "passage"):
                part = rows[roles[rows] == role]
                if len(part):
                    emb = student.embed(student.tokenize(frame["text"].iloc[part].tolist(), role, cfg.max_length))
                    goal = torch.from_numpy(target[part])
                    loss = loss + ((emb.float() - goal) ** 2).sum(dim=1).sum() / len(rows)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        row = {"step": step, "loss": float(loss.detach()), "held_out_cosine": None}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            row["held_out_cosine"] = _cosine(student, frame.iloc[held], target[held], cfg.max_length)
            model.train()
        log.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        if checkpoint_every and step % checkpoint_every == 0 and step < cfg.steps:
            _save_checkpoint(ckpt_dir, {
                "key": key, "step": step, "log": log, "rng": torch.get_rng_state(),
                "seconds": earlier + time.perf_counter() - t_start, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "model": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}})
    model.eval()
    recipe = {"config": dataclasses.asdict(cfg), "teacher": teacher.name, "teacher_info": teacher.info,
              "teacher_layers": list(chosen), "texts": int(len(frame)), "train_texts": int(len(train_rows)),
              "sources": sorted(set(frame["dataset"])), "bf16": use_bf16, "cpu_model": machine.cpu_model(),
              "seconds": round(earlier + time.perf_counter() - t_start, 1), "resumed_at": done or None,
              "held_out_cosine": log[-1]["held_out_cosine"], "log": log}
    student.info = {**student.info, "recipe": "recipe.json"}
    with atomic_write(out_dir) as tmp:
        student.save(tmp)
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return out_dir


def ensure_students(sizes, teacher_depth: int = 12, progress: bool = True, **recipe) -> dict[int, Path]:
    """The folder of the student of every size below ``teacher_depth``, distilled now when missing.

    ``recipe``: DistillConfig fields (steps, max_texts, ...). A student that
    exists is reused; when its recipe differs from the requested one a
    warning says so (delete its folder to rebuild it).
    """
    out = {}
    for k in sorted(int(k) for k in sizes if int(k) < teacher_depth):
        cfg = DistillConfig(layers=k, **recipe)
        folder = student_dir(k)
        if (folder / "recipe.json").is_file():
            saved = json.loads((folder / "recipe.json").read_text())["config"]
            differ = {f: (saved.get(f), v) for f, v in dataclasses.asdict(cfg).items()
                      if f in recipe and saved.get(f) != (list(v) if isinstance(v, tuple) else v)}
            if differ:
                warnings.warn(f"reusing {folder}, distilled with another recipe (saved, requested): {differ}; "
                              "delete the folder to distil it again", stacklevel=2)
        else:
            distill(cfg, folder, progress=progress)
        out[k] = folder
    return out


def recipes(sizes) -> pd.DataFrame:
    """One row per built student: layers, teacher layers copied, texts, steps, held-out cosine, seconds, bf16."""
    rows = []
    for k in sorted(int(k) for k in sizes):
        path = student_dir(k) / "recipe.json"
        if path.is_file():
            r = json.loads(path.read_text())
            rows.append({"student": student_name(k), "layers": k, "teacher_layers": r["teacher_layers"],
                         "texts": r["texts"], "steps": r["config"]["steps"],
                         "held_out_cosine": r["held_out_cosine"], "distill_seconds": r["seconds"], "bf16": r["bf16"],
                         "cpu_model": r.get("cpu_model", "")})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Distil small students of the embedded backbone.")
    ap.add_argument("--layers", type=int, nargs="+", default=[3, 6])
    for f in dataclasses.fields(DistillConfig):
        if f.name not in ("layers", "init_layers", "bf16"):
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ap.add_argument("--out", default="", help="folder for the students (default: $HBT_CACHE_DIR/models)")
    args = ap.parse_args(argv)
    teacher = load_encoder("embedded")
    for k in args.layers:
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)
                  if f.name not in ("layers", "init_layers", "bf16")}
        cfg = DistillConfig(layers=k, **values)
        out = Path(args.out) / student_name(k) if args.out else student_dir(k)
        distill(cfg, out, teacher=teacher)
        recipe = json.loads((out / "recipe.json").read_text())
        print(f"{out}: held-out cosine to the teacher {recipe['held_out_cosine']:.4f}, {recipe['seconds']:.0f} s")


if __name__ == "__main__":
    main()
