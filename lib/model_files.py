"""The on-disk formats of a model folder, below the encoder: what lib.backbones reads and lib.model_store writes.

Three kinds of folder hold a model: ``full`` (transformers' ``config.json``
and weights, plus the sentence-transformers module files), ``compact``
(``base_model.json`` + ``trained.safetensors``: only the tensors training
changed, the rest rebuilt from the named base) and ``pointer``
(``same_as.json``: stands for a sibling folder). This module knows the file
names, the hashes that tie a compact folder to its base, how to recognise
and resolve each kind, and the sentence-transformers files written beside
the weights; it imports nothing of the project but :mod:`lib.errors` and
:mod:`lib.integrity` (file hashes), so
:mod:`lib.backbones` (loading) and :mod:`lib.model_store` (saving, export,
cards) can both build on it.
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Any

import torch

from lib.errors import ModelError
from lib.integrity import sha256_of

COMPACT_WEIGHTS = "trained.safetensors"
BASE_REF = "base_model.json"
SAME_AS = "same_as.json"
FORMAT = "hbt-compact-1"
CARD = "README.md"
ST_PROMPTS = {"query": "query_prefix", "document": "passage_prefix", "passage": "passage_prefix"}


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and raw bytes (no copy for contiguous CPU tensors)."""
    t = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


_VOCAB_SHA: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> (len, digest)


def vocab_sha256(tokenizer) -> str:
    """sha256 of the tokenizer's vocabulary (token -> id), independent of padding/truncation state.

    Remembered per tokenizer object while its length stays the same (adding tokens changes it); about
    1 s for the 250k-token vocabulary, asked at every compact-folder load and every training run.
    """
    size = len(tokenizer)
    try:
        known = _VOCAB_SHA.get(tokenizer)
    except TypeError:  # an object that cannot be weakly referenced: hashed each time
        known = None
    if known is not None and known[0] == size:
        return known[1]
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    digest = hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()
    try:
        _VOCAB_SHA[tokenizer] = (size, digest)
    except TypeError:
        pass
    return digest


def write_sentence_transformers_files(folder: str | os.PathLike, encoder) -> None:
    """modules.json (Transformer, Pooling, Normalize), pooling / prompt configs, as sentence-transformers reads them.

    The classic module names (``sentence_transformers.models.*``) are used:
    every sentence-transformers release from 2.x to 6.x loads them. The
    prompts are the encoder's prefixes, so ``encode_query`` /
    ``encode_document`` add ``"query: "`` / ``"passage: "`` as the project
    does; pooling is the encoder's (mean or CLS, the prompt included), then
    L2 normalisation.
    """
    folder = Path(folder)
    cfg = encoder.model.config
    dim = int(cfg.hidden_size)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    max_seq = int(min(512, getattr(cfg, "max_position_embeddings", 512) or 512))
    pooling = {"word_embedding_dimension": dim, "pooling_mode_cls_token": encoder.pooling == "cls",
               "pooling_mode_mean_tokens": encoder.pooling == "mean", "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
               "pooling_mode_lasttoken": False, "include_prompt": True}
    prompts = {k: getattr(encoder, attr) for k, attr in ST_PROMPTS.items() if getattr(encoder, attr)}
    st_config = {"__version__": {"pytorch": torch.__version__.split("+")[0]}, "prompts": prompts,
                 "default_prompt_name": None, "similarity_fn_name": "cosine"}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _dump(modules, folder / "modules.json")
    _dump({"max_seq_length": max_seq, "do_lower_case": False}, folder / "sentence_bert_config.json")
    _dump(pooling, folder / "1_Pooling" / "config.json")
    _dump(st_config, folder / "config_sentence_transformers.json")


def _pooler_slot(model) -> bool:
    """True when the model class has an optional pooler (BERT-like) and this instance has none."""
    import inspect

    return getattr(model, "pooler", "absent") is None and \
        "add_pooling_layer" in inspect.signature(type(model).__init__).parameters


def add_pooler_placeholder(folder: str | os.PathLike, model) -> bool:
    """Add an identity ``pooler.dense`` to the saved weights of a pooler-less BERT-like model.

    ``AutoModel.from_pretrained`` builds the pooler and, without these two
    tensors, initialises them randomly and reports them MISSING. The
    project's embeddings never use the pooler (mean / CLS pooling of the last
    hidden state); weight = identity, bias = 0 makes ``pooler_output`` the
    tanh of the CLS state, deterministic. :func:`lib.backbones.load_encoder`
    drops it again. Returns whether the file was changed.
    """
    from safetensors.torch import load_file, save_file

    path = Path(folder) / "model.safetensors"
    if not (_pooler_slot(model) and path.is_file()):
        return False
    tensors = load_file(str(path))
    if any(k.startswith("pooler.") for k in tensors):
        return False
    dim = int(model.config.hidden_size)
    tensors["pooler.dense.weight"] = torch.eye(dim, dtype=torch.float32)
    tensors["pooler.dense.bias"] = torch.zeros(dim, dtype=torch.float32)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return True


def finish_full_folder(folder: str | os.PathLike, encoder) -> None:
    """What :meth:`lib.encoder.Encoder.save` adds to save_pretrained's files: pooler placeholder, module files."""
    add_pooler_placeholder(folder, encoder.model)
    write_sentence_transformers_files(folder, encoder)


def saved_pooler(folder: str | os.PathLike) -> bool:
    """Whether a local folder's ``model.safetensors`` holds ``pooler.*`` tensors (cheap: reads the header)."""
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            return any(k.startswith("pooler.") for k in fh.keys())
    except Exception:  # noqa: BLE001 - unreadable: let from_pretrained report it
        return False


def _dump(values: Any, path: Path) -> None:
    path.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n")


def kind(folder: str | os.PathLike) -> str:
    """'pointer' (same_as.json), 'compact' (base_model.json), 'full' (config.json) or 'none'."""
    folder = Path(folder)
    if (folder / SAME_AS).is_file():
        return "pointer"
    if (folder / BASE_REF).is_file():
        return "compact"
    if (folder / "config.json").is_file():
        return "full"
    return "none"


def model_folder(folder: str | os.PathLike) -> Path:
    """A run folder (``train_config.json`` + ``model/``) -> its ``model/``; any other folder as it is."""
    folder = Path(folder)
    if (folder / "train_config.json").is_file() and (folder / "model").is_dir() and kind(folder) == "none":
        return folder / "model"
    return folder


def is_stored(folder: str | os.PathLike) -> bool:
    """Whether :func:`load_stored` (not transformers) must read this folder."""
    return kind(folder) in ("pointer", "compact")


def resolve(folder: str | os.PathLike) -> Path:
    """Follow ``same_as.json`` pointers to the folder that holds weights."""
    folder = Path(folder)
    seen = set()
    while kind(folder) == "pointer":
        if folder.resolve() in seen:
            raise ModelError(f"{folder / SAME_AS}: the same_as pointers form a loop")
        seen.add(folder.resolve())
        target = json.loads((folder / SAME_AS).read_text())["same_as"]
        folder = (folder.parent / target) if not Path(target).is_absolute() else Path(target)
        if not folder.is_dir():
            raise ModelError(f"{folder} (named by a same_as.json pointer) does not exist; the run folder is "
                             "incomplete: rerun its training")
    return folder
