"""The size axis of research question 2: does the hybrid advantage change as the encoder grows?

Offline the axis (``axis``) is either the distilled students of the
embedded backbone (``"distilled"``, the default: ``distilled-L3``,
``distilled-L6`` built by ``lib.distill``, each a working encoder) or the
backbone cut to its first k transformer layers (``"truncated"``:
``load_encoder("embedded", num_layers=k)``, damaged copies kept for
comparison). Each size gets the untuned (zero-shot) model and one model per
strategy and training seed, trained by ``lib.training.train`` into
``results/<profile>/models/<run_name>`` (students' runs are named
``distilled-L<k>__<run_name>``). The full depth is the backbone itself,
passed as ``num_layers=0``, so it maps to the runs of notebook 03 (run
names without ``_L``) and reuses them. An existing finished run is always
reused; when its training settings differ from the requested ones a warning
says so and ``scaling.csv`` shows its steps.

With a network the axis is a list of hub backbones at full depth
(:data:`HUB_BACKBONES`); their runs are named ``<backbone>__<run_name>``
except the profile's own backbone, whose runs are notebook 03's.

Size is reported two ways: non-embedding parameters (every parameter
outside ``nn.Embedding`` modules, the convention of Kaplan et al.; the
embedded backbone's 96M-entry vocabulary matrix would otherwise hide the
layers) and measured encoding throughput (texts/s on a fixed passage
sample, one process, fixed thread count). Same-size models share one
architecture, so throughput is measured once per size, on the zero-shot copy.

Scores: ``lib.mlqa_retrieval`` (MLQARetrieval, 49 subsets) and
``lib.evaluation.evaluate_model`` (XQuAD-R). Intervals over seeds and
questions: :mod:`lib.scaling_stats`.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from lib import machine, mlqa_retrieval
from lib import strategies as strategy_registry
from lib.backbones import DISTILLED_NAME, distilled_dir, load_encoder
from lib.data import load_lareqa, load_mlqa_retrieval
from lib.embedded_model import embedded_model_dir
from lib.errors import ConfigError, ModelError
from lib.evaluation import (data_fingerprint, evaluate_model, load_metrics, read_manifest, up_to_date,
                            upsert_metrics)
from lib.models import arm_name, describe_model, is_finished, num_layers_arg, safe_name, zero_shot_name
from lib.paths import atomic_write, results_dir
from lib.results import check_columns, upsert_csv
from lib.timing import encode_pass, torch_threads, warm_up
from lib.training import TrainConfig, config_from, run_name, train
from lib.settings import comma_list, hub_offline

DEFAULT_SIZES = (3, 6, 12)
AXES = ("distilled", "truncated")  # students of lib.distill, or the backbone cut to its first k layers
ZERO_SHOT = strategy_registry.ZERO_SHOT
HUB_BACKBONES = (  # the size axis with a network: parameters from the model cards
    "intfloat/multilingual-e5-small",  # 118M (12 x 384)
    "intfloat/multilingual-e5-base",  # 278M (12 x 768)
    "intfloat/multilingual-e5-large",  # 560M (24 x 1024)
    "xlm-roberta-base",  # 278M (12 x 768), no retrieval training
    "xlm-roberta-large",  # 560M (24 x 1024), no retrieval training
    "sentence-transformers/LaBSE",  # 471M (12 x 768), CLS pooling
)
SCALING_COLUMNS = ["model", "strategy", "layers", "non_embedding_params", "encode_texts_per_s",
                   "train_seconds", "backbone", "total_params", "steps", "reused",
                   "encode_cpu", "encode_precision", "train_cpu", "train_precision"]  # where each timing was taken
IDENTITY_KEYS = ("backbone", "num_layers", "strategy", "alpha", "seed")  # what names a run; the rest is "settings"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


# --------------------------------------------------------------------------
# Parameters


def parse_list(text: str | Sequence, name: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    """'a, b' -> ('a', 'b'); ConfigError on an empty list, a repeat or a value outside ``allowed``."""
    items = comma_list(text)
    if not items:
        raise ConfigError(f"{name}={text!r} is empty: give a comma-separated list, e.g. {','.join(allowed or ['a'])!r}")
    if len(set(items)) != len(items):
        raise ConfigError(f"{name}={text!r} repeats a value")
    if allowed is not None:
        bad = [s for s in items if s not in allowed]
        if bad:
            raise ConfigError(f"{name}: {bad} not allowed; choose among {list(allowed)}")
    return tuple(items)


def parse_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """'3,6,12' -> (3, 6, 12), sorted; ConfigError on anything but distinct positive integers."""
    items = parse_list([str(x) for x in text] if not isinstance(text, str) else text, "layer_sizes")
    try:
        sizes = [int(s) for s in items]
    except ValueError:
        raise ConfigError(f"layer_sizes={text!r}: use comma-separated layer counts such as '3,6,12'") from None
    if any(k < 1 for k in sizes):
        raise ConfigError(f"layer_sizes={text!r}: layer counts start at 1")
    return tuple(sorted(sizes))


def check_hub_id(hub_id: str) -> str:
    """A syntactically valid hub id (``name`` or ``owner/name``), else ConfigError blaming the id."""
    if (not isinstance(hub_id, str) or not _HUB_ID.match(hub_id) or "--" in hub_id or ".." in hub_id
            or len(hub_id) > 96):
        raise ConfigError(f"backbone {hub_id!r} is not a valid Hugging Face hub id (owner/name, letters, "
                          "digits, '.', '_', '-'): the id is the problem, not the network. Example: "
                          "intfloat/multilingual-e5-base")
    return hub_id


def check_hub_backbone(hub_id: str) -> Path:
    """Local path of the backbone's ``config.json``, downloading it when allowed.

    The error says which side failed: a malformed or unknown id (the id), or
    a hub that cannot be reached / may not be contacted (the network; the id
    is then unverified). With ``HF_HUB_OFFLINE`` set only the local cache is
    read, so nothing touches the network.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    check_hub_id(hub_id)
    offline = hub_offline()
    try:
        return Path(hf_hub_download(hub_id, "config.json", local_files_only=offline))
    except RepositoryNotFoundError as exc:
        raise ModelError(f"backbone {hub_id!r} does not exist on the Hugging Face hub (or is private): the id is "
                         f"the problem; check its spelling, e.g. one of {list(HUB_BACKBONES)}") from exc
    except GatedRepoError as exc:
        raise ModelError(f"backbone {hub_id!r} is gated on the hub: accept its licence on the model page and "
                         "log in (huggingface-cli login); the id itself is fine") from exc
    except Exception as exc:  # noqa: BLE001 - everything else is the network or the cache
        if offline:
            raise ModelError(f"backbone {hub_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE / "
                             "TRANSFORMERS_OFFLINE forbids downloading it: a network setting, not proof that the "
                             "id is wrong (it could not be checked). Unset the variable on a machine with a "
                             "network, or use backbone='embedded'") from exc
        raise ModelError(f"backbone {hub_id!r}: the Hugging Face hub could not be reached ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}): a network problem; the id could not "
                         "be checked. Retry with a network, or use backbone='embedded' offline") from exc


def backbone_depth(backbone: str) -> int:
    """Number of transformer layers of ``backbone`` ('embedded', a model folder or a hub id), read
    from its config without loading weights."""
    if backbone == "embedded":
        config = embedded_model_dir() / "config.json"
    elif DISTILLED_NAME.match(backbone):
        config = distilled_dir(backbone) / "config.json"
        if not config.is_file():
            raise ModelError(f"no distilled student {backbone!r} at {config.parent}: build it with "
                             f"`python -m lib.distill --layers {DISTILLED_NAME.match(backbone).group(1)}`")
    elif Path(backbone).expanduser().is_dir():
        config = Path(backbone).expanduser() / "config.json"
        if not config.is_file():
            raise ModelError(f"backbone folder {backbone} has no config.json")
    else:
        config = check_hub_backbone(backbone)
    depth = json.loads(Path(config).read_text()).get("num_hidden_layers")
    if not isinstance(depth, int) or depth < 1:
        raise ModelError(f"{config}: no positive num_hidden_layers; cannot build a size axis from {backbone!r}")
    return depth


def check_sizes(sizes: Sequence[int], depth: int, backbone: str = "embedded") -> None:
    """ConfigError unless every layer count is within 1..depth."""
    bad = [k for k in sizes if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= depth]
    if bad:
        raise ConfigError(f"layer_sizes {list(bad)} out of range: backbone {backbone!r} has {depth} layers, so "
                          f"each size must be in 1..{depth}")


# --------------------------------------------------------------------------
# The models of the axis


@dataclass(frozen=True)
class SizedModel:
    """One point of the size axis: a zero-shot copy or a trained run."""

    name: str  # the model column of metrics.csv
    strategy: str  # zero-shot | mono | cross | hybrid
    layers: int  # transformer layers kept
    num_layers: int  # argument of load_encoder / TrainConfig (0 = full depth)
    backbone: str
    alpha: float | None = None
    seed: int | None = None
    run_dir: Path | None = None  # results/<profile>/models/<folder> for trained models

    @property
    def trained(self) -> bool:
        return self.run_dir is not None

    @property
    def arm(self) -> str:
        """The model without its seed: what intervals over seeds pool (``hybrid_a0.5_s1`` -> ``hybrid_a0.5``)."""
        return arm_name(self.name)

    def load(self):
        if self.trained:  # a ModelError naming the fix when the run's weights stayed on another machine
            return describe_model(str(self.run_dir), self.name).load()
        return load_encoder(self.backbone, num_layers=self.num_layers)


def _strategies(names: Sequence[str] | None) -> tuple[str, ...]:
    """The trained strategies to use: all registered ones (``None``) or the named ones, checked."""
    allowed = strategy_registry.trained_names()
    return allowed if names is None else parse_list(list(names), "strategies", allowed)


def parse_seeds(text: str | Sequence[int]) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); ConfigError on anything but distinct non-negative integers."""
    items = parse_list([str(x) for x in text] if not isinstance(text, str) else text, "seeds")
    try:
        seeds = tuple(int(s) for s in items)
    except ValueError:
        raise ConfigError(f"seeds={text!r}: use comma-separated training seeds such as '0,1,2'") from None
    if any(s < 0 for s in seeds):
        raise ConfigError(f"seeds={text!r}: seeds are non-negative integers")
    return seeds


def plan_models(profile: str, backbone: str = "embedded", sizes: Sequence[int] = DEFAULT_SIZES,
                strategies: Sequence[str] | None = None, alpha: float = 0.5, seeds: Sequence[int] = (0,),
                depth: int | None = None, axis: str = "truncated",
                full_size_seeds: Sequence[int] | None = None) -> list[SizedModel]:
    """Zero-shot plus one trained model per strategy and seed for every size.

    ``full_size_seeds``: the seeds at the backbone's own depth when they differ
    from ``seeds`` (there the runs are notebook 03's, which may have trained
    more seeds than the smaller sizes afford); ``None`` uses ``seeds``.

    ``axis="truncated"``: the backbone's first k layers; ``axis="distilled"``:
    the student ``distilled-L<k>`` for every k below the backbone's depth
    (the embedded backbone only). The full depth is the backbone either way.
    """
    if axis not in AXES:
        raise ConfigError(f"size_axis={axis!r}: use one of {AXES}")
    if axis == "distilled" and backbone != "embedded":
        raise ConfigError(f"size_axis='distilled' needs backbone='embedded' (the students of lib.distill), got "
                          f"{backbone!r}; use size_axis='truncated' for another backbone")
    depth = backbone_depth(backbone) if depth is None else depth
    check_sizes(sizes, depth, backbone)
    strategies = _strategies(strategies)
    seeds = parse_seeds(list(seeds))
    full_seeds = seeds if full_size_seeds is None else parse_seeds(list(full_size_seeds))
    models = []
    for k in sorted(sizes):
        if axis == "distilled" and k != depth:
            source, arg, prefix = f"distilled-L{k}", 0, f"distilled-L{k}__"
            backbone_depth(source)  # a clear error now when the student was never built
        else:
            source, arg, prefix = backbone, num_layers_arg(k, depth), ""
        models.append(SizedModel(zero_shot_name(source, arg), ZERO_SHOT, k, arg, source))
        for strategy in strategies:
            for seed in full_seeds if k == depth else seeds:
                cfg = TrainConfig(backbone=source, num_layers=arg, strategy=strategy, alpha=alpha, seed=seed)
                name = prefix + run_name(cfg)
                models.append(SizedModel(name, strategy, k, arg, source, cfg.alpha, seed,
                                         results_dir(profile) / "models" / name))
    return models


def plan_hub_models(profile: str, backbones: Sequence[str], own_backbone: str = "",
                    strategies: Sequence[str] | None = None, alpha: float = 0.5,
                    seeds: Sequence[int] = (0,)) -> list[SizedModel]:
    """Zero-shot plus trained models at full depth for each hub backbone (needs the hub or its cache)."""
    strategies = _strategies(strategies)
    models = []
    for backbone in backbones:
        depth = backbone_depth(backbone)
        models.append(SizedModel(zero_shot_name(backbone, 0), ZERO_SHOT, depth, 0, backbone))
        prefix = "" if backbone == own_backbone else f"{safe_name(Path(backbone).name)}__"
        for strategy in strategies:
            for seed in parse_seeds(list(seeds)):
                cfg = TrainConfig(backbone=backbone, strategy=strategy, alpha=alpha, seed=seed)
                name = prefix + run_name(cfg)
                models.append(SizedModel(name, strategy, depth, 0, backbone, cfg.alpha, seed,
                                         results_dir(profile) / "models" / name))
    return models


def plan_frame(models: Sequence[SizedModel]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m.name, "arm": m.arm, "strategy": m.strategy, "layers": m.layers,
                          "seed": m.seed, "num_layers": m.num_layers, "backbone": m.backbone, "trained": m.trained,
                          "run_dir": str(m.run_dir) if m.run_dir else ""} for m in models])


# --------------------------------------------------------------------------
# Training


def train_models(models: Sequence[SizedModel], progress: bool = True,
                 after: Callable[[SizedModel], object] | None = None, profile: str = "",
                 **train_args) -> pd.DataFrame:
    """Train every planned model that has no finished run yet; reuse the others.

    ``train_args`` are notebook 03's settings (:func:`lib.notebook.training_values`):
    TrainConfig fields (steps, batch_size, lr, ...) plus ``checkpoint_every``;
    other keys are ignored. ``profile``: whose ``scaling.csv`` the table will join (checked first).
    ``after(model)`` runs once each trained model is
    there (e.g. :func:`evaluate_models` on it, so its results exist before its
    weights can be lost, as notebook 03's ``evaluate_on``). Returns rows
    ``model, train_seconds, steps, reused`` read from each run's ``train_config.json``.
    """
    checkpoint_every = int(train_args.pop("checkpoint_every", 20))
    if profile:
        check_scaling_file(profile)  # its table is written at the end: a stale file fails before the training
    rows = []
    for m in models:
        if not m.trained:
            continue
        cfg = config_from({**train_args, "backbone": m.backbone, "num_layers": m.num_layers, "strategy": m.strategy,
                           "alpha": m.alpha if m.alpha is not None else 0.5, "seed": m.seed or 0})
        reused = is_finished(m.run_dir)
        if reused:
            saved = json.loads((m.run_dir / "train_config.json").read_text())
            differ = {k: (saved.get(k), v) for k, v in cfg.to_dict().items()
                      if k not in IDENTITY_KEYS and k in saved and saved[k] != v}
            if differ:
                warnings.warn(f"reusing {m.run_dir.name}, trained with other settings (saved, requested): {differ}",
                              stacklevel=2)
        else:
            train(cfg, m.run_dir, progress=progress, checkpoint_every=checkpoint_every)
        if after is not None:
            after(m)
        saved = json.loads((m.run_dir / "train_config.json").read_text())
        rows.append({"model": m.name, "train_seconds": float(saved.get("train_seconds", math.nan)),
                     "steps": int(saved.get("steps", 0)), "reused": reused,
                     "train_cpu": saved.get("cpu_model", ""), "train_precision": saved.get("precision", "")})
    return pd.DataFrame(rows, columns=["model", "train_seconds", "steps", "reused", "train_cpu", "train_precision"])


# --------------------------------------------------------------------------
# Size: parameters and encoding cost


def count_parameters(model) -> dict[str, int]:
    """Total, embedding (every ``nn.Embedding``: words, positions, token types) and non-embedding parameters."""
    import torch

    seen, total, embedding = set(), 0, 0
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            for p in module.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    embedding += p.numel()
    for p in model.parameters():
        total += p.numel()
    return {"total_params": int(total), "embedding_params": int(embedding),
            "non_embedding_params": int(total - embedding)}


def encode_speed(encoder, texts: Sequence[str], *, role: str = "passage", batch_size: int = 32,
                 max_length: int = 256, threads: int = 2, repeats: int = 2) -> float:
    """Texts per second encoding ``texts`` (best of ``repeats`` passes after a warm-up batch) with
    torch limited to ``threads`` intra-op threads."""
    texts = list(texts)
    if not texts or repeats < 1:
        raise ConfigError(f"encode_speed: needs texts (got {len(texts)}) and repeats >= 1 (got {repeats})")
    kw = dict(batch_size=batch_size, max_length=max_length)
    with torch_threads(threads):
        warm_up(encoder, texts[:batch_size], role, **kw)
        best = min(encode_pass(encoder, texts, role, **kw)[1] for _ in range(repeats))
    return len(texts) / best


def speed_sample(subsets: dict, n: int = 256, seed: int = 0) -> list[str]:
    """A fixed sample of MLQARetrieval paragraphs from every language (same texts for every model)."""
    docs = pd.concat([rs.docs[["doc_id", "lang", "text"]] for _, rs in sorted(subsets.items())])
    docs = docs.drop_duplicates("text").sort_values(["lang", "doc_id"], kind="stable")
    take = min(n, len(docs))
    rng = np.random.default_rng(seed)
    return docs["text"].iloc[np.sort(rng.choice(len(docs), take, replace=False))].tolist()


def measure_sizes(models: Sequence[SizedModel], texts: Sequence[str], *, threads: int = 2, batch_size: int = 32,
                  max_length: int = 256, repeats: int = 2) -> pd.DataFrame:
    """Parameters and encode throughput per size (measured on each size's zero-shot copy)."""
    rows = []
    for m in models:
        if m.strategy != ZERO_SHOT:
            continue
        encoder = m.load()
        counts = count_parameters(encoder.model)
        speed = encode_speed(encoder, texts, batch_size=batch_size, max_length=max_length, threads=threads,
                             repeats=repeats)
        rows.append({"backbone": m.backbone, "layers": m.layers, **counts, "encode_texts_per_s": speed,
                     "threads": threads, "max_length": max_length, "n_texts": len(texts),
                     "encode_cpu": machine.cpu_model(), "encode_precision": machine.precision()})
        del encoder
    return pd.DataFrame(rows)


def scaling_table(models: Sequence[SizedModel], sizes: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """One row per model: SCALING_COLUMNS (size facts joined by backbone + layers, training by model)."""
    frame = plan_frame(models)[["model", "strategy", "layers", "backbone"]]
    size_columns = ["backbone", "layers", "total_params", "non_embedding_params", "encode_texts_per_s",
                    "encode_cpu", "encode_precision"]
    frame = frame.merge(sizes.reindex(columns=size_columns), on=["backbone", "layers"], how="left")
    frame = frame.merge(training.reindex(columns=["model", "train_seconds", "steps", "reused", "train_cpu",
                                                  "train_precision"]), on="model", how="left")
    frame["reused"] = frame["reused"].astype("boolean")
    return frame[SCALING_COLUMNS]


def scaling_path(profile: str) -> Path:
    return results_dir(profile) / "scaling.csv"


def check_scaling_file(profile: str) -> None:
    """ConfigError now, before any training, when ``scaling.csv`` was written by a version with other columns
    (:func:`write_scaling` could not merge into it at the end)."""
    path = scaling_path(profile)
    if path.is_file():
        check_columns(path, pd.read_csv(path, nrows=0).columns, SCALING_COLUMNS)


def write_scaling(table: pd.DataFrame, profile: str) -> Path:
    """Write ``results/<profile>/scaling.csv``, replacing rows of the same models (atomic)."""
    path = scaling_path(profile)
    upsert_csv(path, table, keys=["model"], sort_by=["backbone", "layers", "strategy"])
    return path


def write_summaries(profile: str, **tables: pd.DataFrame) -> list[Path]:
    """Write each non-empty table as ``results/<profile>/07_<name>.csv`` (atomic); return the paths."""
    out = []
    for name, frame in tables.items():
        if frame is None or frame.empty:
            continue
        path = results_dir(profile) / f"07_{name}.csv"
        with atomic_write(path) as tmp:
            frame.to_csv(tmp, index=False)
        out.append(path)
    return out


# --------------------------------------------------------------------------
# Evaluation


def evaluate_mlqa(models: Sequence[SizedModel], profile: str, *, subsets: dict | None = None, max_items: int = 0,
                  max_length: int = 512, batch_size: int = 32, force: bool = False,
                  progress: bool | None = None) -> pd.DataFrame:
    """MLQARetrieval (49 subsets) for every model, skipping those with results; returns the subset table."""
    if subsets is None:
        subsets = load_mlqa_retrieval(max_items=max_items)

    tables = []
    for m in models:
        target = str(m.run_dir) if m.trained else m.backbone
        fingerprint = describe_model(target, m.name, 0 if m.trained else m.num_layers).fingerprint
        key = {"model_fingerprint": fingerprint, "max_items": int(max_items), "max_length": int(max_length)}
        if not force and mlqa_retrieval.has_results(profile, m.name, key):
            continue
        encoder = m.load()
        result = mlqa_retrieval.evaluate_mlqa_retrieval(encoder, subsets, max_items=max_items, batch_size=batch_size,
                                                        max_length=max_length, progress=progress)
        mlqa_retrieval.write_mlqa_results(result, profile, model=m.name, strategy=m.strategy, alpha=m.alpha,
                                          seed=m.seed, layers=m.layers)
        mlqa_retrieval.record_evaluation(profile, m.name, key)
        tables.append(result.subsets.assign(model=m.name, encode_seconds=result.encode_seconds))
        del encoder
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def evaluate_models(models: Sequence[SizedModel], profile: str, datasets: Sequence[str], *, subsets: dict | None = None,
                    max_items: int = 0, max_length: int = 512, progress: bool | None = None) -> None:
    """Notebook 07's evaluations of ``models`` on ``datasets`` (mlqa_retrieval, xquad_r, mlqa_r); what is
    up to date is skipped."""
    if "mlqa_retrieval" in datasets:
        evaluate_mlqa(models, profile, subsets=subsets, max_items=max_items, max_length=max_length,
                      progress=progress)
    for lareqa in ("xquad_r", "mlqa_r"):
        if lareqa in datasets:
            evaluate_lareqa(models, profile, lareqa, max_items=max_items, progress=progress)


def evaluate_lareqa(models: Sequence[SizedModel], profile: str, dataset: str = "xquad_r", *, max_items: int = 0,
                    progress: bool | None = None) -> None:
    """XQuAD-R / MLQA-R through ``lib.evaluation`` (skips up-to-date models), then fills ``layers``."""
    data = load_lareqa(dataset, max_items=max_items)
    data_fp = data_fingerprint(data)
    manifest = read_manifest(profile)["entries"]
    for m in models:
        target = str(m.run_dir) if m.trained else m.backbone
        spec = describe_model(target, m.name, 0 if m.trained else m.num_layers)
        if not up_to_date(profile, spec, dataset, data_fp, manifest):
            evaluate_model(target, m.name, dataset, profile, num_layers=0 if m.trained else m.num_layers,
                           max_items=max_items, data=data, progress=progress)
    metrics = load_metrics(profile)
    layers = {m.name: m.layers for m in models}
    mine = (metrics["dataset"] == dataset) & metrics["model"].isin(layers)
    gaps = mine & metrics["layers"].isna()
    if gaps.any():  # a cached zero-shot evaluation does not load the model and cannot know its depth
        fixed = metrics[mine].copy()
        fixed["layers"] = fixed["model"].map(layers)
        for (model, _), part in fixed.groupby(["model", "dataset"]):
            upsert_metrics(profile, part)
