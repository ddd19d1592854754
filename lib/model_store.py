"""Run folders on disk: compact trained models, standalone export, model cards.

A trained run keeps only what training changed. The word embeddings (96M of
the embedded backbone's 117M parameters) are frozen during training, so
``model/`` holds:

- ``trained.safetensors``: every tensor of the model's state dict except the
  frozen ones, stored in fp16 (:data:`STORE_DTYPE`; loading casts them back
  to fp32). Rounding a trained weight to fp16 moves it by at most 2^-11 of
  its value; the embeddings of the stored model match the trained one's at
  cosine >= 0.9999 (``tests/test_model_store.py``), and a 12-layer run's
  folder is half the size of an fp32 one;
- ``base_model.json``: how to rebuild the rest: the backbone (``"embedded"``,
  a folder or a hub id) and layer count, and the sha256 of each frozen tensor
  and of the tokenizer's vocabulary; loading checks them and refuses another
  base;
- ``config.json`` (the transformers config), ``encoder_config.json``
  (pooling, prefixes, the run's name), the sentence-transformers module files
  (``modules.json``, ``sentence_bert_config.json``, ``1_Pooling/``,
  ``2_Normalize/``, ``config_sentence_transformers.json`` with the
  ``"query: "`` / ``"passage: "`` prompts) and a model card ``README.md``.

``last/`` is either ``same_as.json`` pointing at ``model/`` (when the last
step is also the best one, or without validation) or a second compact
folder. :func:`lib.backbones.load_encoder` reads all three kinds (full,
compact, pointer) transparently.

``python -m lib.model_store export RUN_DIR OUT_DIR`` writes a standalone
folder that ``SentenceTransformer(OUT_DIR)`` and ``AutoModel`` load as they
are: full weights (with an identity placeholder for BERT's unused pooler, so
no weight is reported missing), tokenizer, the module files, and the model
card with the run's metrics from ``results/<profile>/metrics.csv`` when
notebook 04 / 07 has written them. ``python -m lib.model_store info RUN_DIR``
prints what a run folder holds; ``python -m lib.model_store card RUN_DIR``
rewrites the run's own ``model/README.md`` with its metrics.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Iterable

import torch

from lib.backbones import load_encoder
from lib.encoder import ENCODER_CONFIG
from lib.errors import ModelError
from lib.integrity import sha256_of
from lib.model_files import (BASE_REF, CARD, COMPACT_WEIGHTS, FORMAT, SAME_AS, _dump, kind,
                             resolve, tensor_sha256, vocab_sha256, write_sentence_transformers_files)
from lib.paths import atomic_write


# --------------------------------------------------------------------------
# Hashes


# --------------------------------------------------------------------------
# sentence-transformers files and the pooler placeholder


# --------------------------------------------------------------------------
# Compact folders


def _backbone_spec(backbone: str) -> str:
    """A backbone as stored: 'embedded' and hub ids as given, local folders as absolute paths."""
    path = Path(backbone).expanduser()
    return str(path.resolve()) if backbone != "embedded" and path.is_dir() else backbone


def base_reference(encoder, backbone: str, num_layers: int = 0, frozen: Iterable[str] | None = None) -> dict:
    """What a compact folder needs to rebuild ``encoder``'s frozen part from its backbone.

    ``frozen`` defaults to the parameters with ``requires_grad`` off (the
    word embeddings under :func:`lib.contrastive.prepare_params`). Hashing the
    embedded backbone's 96M frozen weights takes about half a second;
    training computes this once per run.
    """
    model = encoder.model
    names = set(frozen) if frozen is not None else {n for n, p in model.named_parameters() if not p.requires_grad}
    state = model.state_dict()
    unknown = sorted(names - set(state))
    if unknown:
        raise ModelError(f"base_reference: frozen tensor(s) {unknown[:3]} are not in the model's state dict")
    return {"format": FORMAT, "backbone": _backbone_spec(backbone), "num_layers": int(num_layers),
            "base_name": encoder.name, "base_info": dict(encoder.info),
            "frozen": {n: {"sha256": tensor_sha256(state[n]), "shape": list(state[n].shape),
                           "dtype": str(state[n].dtype)} for n in sorted(names)},
            "vocab_sha256": vocab_sha256(encoder.tokenizer)}


def _encoder_meta(encoder, name: str) -> dict:
    return {**encoder.info, "pooling": encoder.pooling, "query_prefix": encoder.query_prefix,
            "passage_prefix": encoder.passage_prefix, "name": name}


STORE_DTYPE = torch.float16  # trained tensors on disk; loading casts them to the model's dtype (fp32)


def save_compact(encoder, folder: str | os.PathLike, base: dict, *, name: str | None = None,
                 card: str | None = None) -> Path:
    """Write ``encoder`` as a compact folder: the non-frozen tensors plus ``base`` (:func:`base_reference`)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    name = name or encoder.name
    state = encoder.model.state_dict()
    frozen = set(base["frozen"])
    trained = {k: v.detach().to("cpu", STORE_DTYPE if v.is_floating_point() else v.dtype).contiguous().clone()
               for k, v in state.items() if k not in frozen}
    with atomic_write(folder) as tmp:
        tmp.mkdir()
        save_file(trained, str(tmp / COMPACT_WEIGHTS), metadata={"format": "pt", "hbt": FORMAT})
        encoder.model.config.save_pretrained(tmp)
        ref = {**base, "weights": COMPACT_WEIGHTS, "weights_sha256": sha256_of(tmp / COMPACT_WEIGHTS),
               "stored_dtype": str(STORE_DTYPE).removeprefix("torch."),
               "n_trained_tensors": len(trained), "n_trained_values": int(sum(v.numel() for v in trained.values()))}
        _dump(ref, tmp / BASE_REF)
        meta = {**_encoder_meta(encoder, name), "weights_sha256": ref["weights_sha256"],
                "base_name": base.get("base_name", "")}
        _dump(meta, tmp / ENCODER_CONFIG)
        write_sentence_transformers_files(tmp, encoder)
        if card:
            (tmp / CARD).write_text(card)
    return folder


def save_same_as(folder: str | os.PathLike, target: str, note: str = "") -> Path:
    """A folder that stands for ``target`` (a sibling folder name, e.g. ``"model"``): ``same_as.json`` only."""
    folder = Path(folder)
    with atomic_write(folder) as tmp:
        tmp.mkdir()
        _dump({"format": FORMAT, "same_as": target, "note": note}, tmp / SAME_AS)
    return folder


def folder_bytes(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path`` (what ``du`` counts, without block rounding)."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------
# Model card


def run_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """This run's summary metrics from ``results/<profile>/metrics.csv`` (run folder = results/<profile>/models/<run>).

    Macro means per dataset and setting: mAP and nDCG@10 for xquad_r /
    mlqa_r (mono, cross, multi), nDCG@10 for mlqa_retrieval (same, cross,
    all). Empty when the run has not been evaluated.
    """
    import pandas as pd

    run_dir = Path(run_dir)
    path = run_dir.parent.parent / "metrics.csv"
    if not path.is_file() or run_dir.parent.name != "models":
        return []
    frame = pd.read_csv(path, dtype={"model": str, "query_lang": str, "doc_lang": str}, keep_default_na=False)
    frame = frame[frame["model"] == run_dir.name]
    rows = []
    for (dataset, setting), part in frame.groupby(["dataset", "setting"], sort=True):
        if setting == "subset":
            continue
        for metric in ("map", "ndcg_at_10"):
            values = pd.to_numeric(part.loc[part["metric"] == metric, "value"], errors="coerce").dropna()
            if len(values):
                rows.append({"dataset": dataset, "setting": setting, "metric": metric,
                             "value": float(values.mean()), "n_rows": int(len(values))})
    return rows


def model_card(name: str, config: dict, *, base: dict | None = None, facts: dict | None = None,
               metrics: list[dict] | None = None, compact: bool = False) -> str:
    """A short README.md: what the model is, how it was trained, how to load it, its metrics if known."""
    facts = facts or {}
    base = base or {}
    strategy = config.get("strategy", "?")
    alpha = config.get("alpha")
    backbone = config.get("backbone", base.get("backbone", "?"))
    layers = config.get("num_layers", 0)
    base_info = base.get("base_info", {})
    source = str(base_info.get("source", ""))
    if base_info.get("source_sha256"):
        source += f" (sha256 {base_info['source_sha256']})"
    lines = [
        "---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
        "tags: [sentence-transformers, feature-extraction, multilingual, retrieval, hybrid-batch-study]", "---", "",
        f"# {name}", "",
        "A multilingual dense retriever fine-tuned by the hybrid-batch study (contrastive InfoNCE with "
        "in-batch negatives; which pairs share a batch is the variable under study).", "",
        "| field | value |", "|---|---|",
        f"| backbone | `{backbone}`{' (' + base.get('base_name', '') + ')' if base.get('base_name') else ''}"
        f"{', first ' + str(layers) + ' layers' if layers else ''} |",
    ]
    if source:
        lines.append(f"| backbone source | {source} |")
    lines += [
        f"| batch strategy | {strategy} |",
        f"| alpha (share of monolingual batches) | {alpha:g} |" if isinstance(alpha, (int, float)) else
        f"| alpha | {alpha} |",
        f"| seed | {config.get('seed')} |",
        f"| steps x batch size | {config.get('steps')} x {config.get('batch_size')} pairs (lr {config.get('lr')}, "
        f"temperature {config.get('temperature')}, word embeddings "
        f"{'frozen' if config.get('freeze_word_embeddings', True) else 'trained'}) |",
        f"| training data | MLQA v1 test (parallel, recombined by item) + TyDi QA GoldP; "
        f"{'all items' if not config.get('max_items') else str(config.get('max_items')) + ' items per language'}"
        f"{'; ' + str(facts['train_pairs']) + ' training pairs' if facts.get('train_pairs') else ''} |",
    ]
    if facts.get("last_step") is not None:
        lines.append(f"| weights | after the last step ({facts['last_step']}); the run's model/ holds the best |")
    elif facts.get("best_step") is not None:
        val = facts.get("best_val_loss")
        lines.append(f"| kept checkpoint | step {facts['best_step']} (lowest validation loss"
                     f"{f' {val:.4f}' if isinstance(val, (int, float)) and math.isfinite(val) else ''}) |")
    lines += ["| embedding | mean pooling, L2-normalised, cosine; prefixes `query: ` / `passage: ` |", ""]
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["Macro means over this study's language pairs (notebooks 04 and 07).", "",
                  "| dataset | setting | metric | value |", "|---|---|---|---|"]
        lines += [f"| {m['dataset']} | {m['setting']} | {m['metric']} | {m['value']:.4f} |" for m in metrics]
    else:
        lines.append("Not evaluated yet: run notebook 04 for this profile, then export again.")
    lines += ["", "## Use", ""]
    if compact:
        lines += ["This folder is a *compact* run: it holds only the trained tensors (`trained.safetensors`) and "
                  "the backbone's identity (`base_model.json`). Inside the project, `load_encoder(folder)` "
                  "reads it; for other tools write a standalone copy first:", "",
                  "```bash", "python -m lib.model_store export RUN_DIR OUT_DIR", "```", ""]
    lines += ["```python", "from sentence_transformers import SentenceTransformer", "",
              "model = SentenceTransformer(OUT_DIR)", 'q = model.encode_query(["Who wrote Hamlet?"])',
              'd = model.encode_document(["Hamlet is a tragedy by William Shakespeare."])',
              "print(model.similarity(q, d))", "```", "",
              "The BERT pooler in `model.safetensors` is an identity placeholder (never trained, never used for "
              "the embeddings); it is there so `AutoModel` loads without newly initialised weights.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Export


def _run_and_model(src: Path, which: str) -> tuple[Path | None, Path]:
    if (src / "train_config.json").is_file():
        return src, src / which
    if src.name in ("model", "last") and (src.parent / "train_config.json").is_file():
        return src.parent, src
    return None, src


def export(src: str | os.PathLike, out_dir: str | os.PathLike, *, which: str = "model",
           overwrite: bool = False) -> Path:
    """Write a standalone folder (full weights, tokenizer, module files, model card) for ``src``.

    ``src`` is a run folder (``which`` picks ``model/`` or ``last/``), one
    of its model folders, or any folder :func:`lib.backbones.load_encoder`
    reads. ``SentenceTransformer(out_dir)`` and ``AutoModel.from_pretrained
    (out_dir)`` load the result without the project.
    """

    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    if which not in ("model", "last"):
        raise ModelError(f"export: which={which!r}; use 'model' (best validation loss) or 'last'")
    run_dir, model_dir = _run_and_model(src, which)
    if kind(model_dir) == "none":
        raise ModelError(f"export: {model_dir} is not a model folder (no config.json, base_model.json or "
                         "same_as.json); pass a run folder results/<profile>/models/<run>/ or a model folder")
    if out_dir.exists():
        if not overwrite:
            raise ModelError(f"export: {out_dir} exists; pass --force (overwrite=True) or another folder")
        if out_dir.resolve() in (model_dir.resolve(), (run_dir or model_dir).resolve()):
            raise ModelError(f"export: {out_dir} is the source itself; choose another folder")
        shutil.rmtree(out_dir)
    encoder = load_encoder(str(model_dir))
    encoder.save(out_dir)
    stored = resolve(model_dir)
    base = json.loads((stored / BASE_REF).read_text()) if kind(stored) == "compact" else {}
    config = facts = {}
    metrics: list[dict] = []
    if run_dir is not None:
        facts = json.loads((run_dir / "train_config.json").read_text())
        config = facts
        metrics = run_metrics(run_dir) if which == "model" else []
    card = model_card(encoder.name, config, base=base, facts=facts, metrics=metrics) if config else \
        model_card(encoder.name, {"backbone": base.get("backbone", encoder.name)}, base=base)
    (out_dir / CARD).write_text(card)
    return out_dir


def write_card(run_dir: str | os.PathLike) -> Path:
    """Rewrite a run's ``model/README.md`` with its current metrics (call after evaluating the run)."""
    run_dir = Path(run_dir)
    if not (run_dir / "train_config.json").is_file() or kind(run_dir / "model") == "none":
        raise ModelError(f"write_card: {run_dir} is not a finished run folder (train_config.json + model/)")
    model_dir = resolve(run_dir / "model")
    facts = json.loads((run_dir / "train_config.json").read_text())
    base = json.loads((model_dir / BASE_REF).read_text()) if kind(model_dir) == "compact" else {}
    name = json.loads((model_dir / ENCODER_CONFIG).read_text()).get("name", run_dir.name)
    card = model_card(name, facts, base=base, facts=facts, metrics=run_metrics(run_dir),
                      compact=kind(model_dir) == "compact")
    with atomic_write(model_dir / CARD) as tmp:
        tmp.write_text(card)
    return model_dir / CARD


def describe(folder: str | os.PathLike) -> dict:
    """What a run or model folder holds: kind, name, bytes per part."""
    folder = Path(folder)
    parts = [folder / "model", folder / "last"] if (folder / "train_config.json").is_file() else [folder]
    out = {"folder": str(folder), "bytes": folder_bytes(folder), "parts": {}}
    for p in parts:
        if p.is_dir():
            entry = {"kind": kind(p), "bytes": folder_bytes(p)}
            target = resolve(p)
            if (target / "encoder_config.json").is_file():
                entry["name"] = json.loads((target / "encoder_config.json").read_text()).get("name", "")
            if kind(p) == "pointer":
                entry["same_as"] = json.loads((p / SAME_AS).read_text())["same_as"]
            out["parts"][p.name] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.model_store", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write a standalone sentence-transformers / transformers folder")
    ex.add_argument("src", help="run folder results/<profile>/models/<run>/ or a model folder")
    ex.add_argument("out_dir")
    ex.add_argument("--last", action="store_true", help="export last/ instead of model/ (best validation loss)")
    ex.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    info = sub.add_parser("info", help="what a run / model folder holds and its size")
    info.add_argument("src")
    card = sub.add_parser("card", help="rewrite a run's model/README.md with its metrics from metrics.csv")
    card.add_argument("run_dir")
    args = parser.parse_args(argv)
    if args.command == "export":
        out = export(args.src, args.out_dir, which="last" if args.last else "model", overwrite=args.force)
        print(f"wrote {out} ({folder_bytes(out) / 1e6:.1f} MB)")
    elif args.command == "card":
        print(f"wrote {write_card(args.run_dir)}")
    else:
        print(json.dumps(describe(args.src), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
