"""This project's encoders as mteb models: mteb's encoder interface, its model metadata, an embedding memo.

:class:`MtebEncoder` wraps an :class:`lib.encoder.Encoder` for ``mteb``
(2.x and 1.x call conventions; query / document prompt types select the
e5 prefixes); :func:`model_meta` names it ``hybrid-batch-study/<name>``
with the weights-fingerprint revision of :func:`model_revision`, so mteb
files its results under that name. :class:`EmbeddingMemo` serves repeated
texts from memory. Running mteb and checking it against the local
MLQARetrieval is :mod:`lib.mteb_eval`; ``mteb`` itself is optional
(``requirements-mteb.txt``) and imported only where it is used.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from typing import Any, Sequence

import numpy as np
import torch

from lib.backbones import load_encoder
from lib.errors import ConfigError, StudyError
from lib.model_files import tensor_sha256

META_ORG = "hybrid-batch-study"  # mteb wants "organization/model" names


def _role(prompt_type: Any) -> str:
    """mteb's prompt type -> our role: query -> query, document / passage -> passage.

    No prompt type (symmetric tasks such as STS) -> query, e5's advice for
    non-retrieval uses.
    """
    value = getattr(prompt_type, "value", prompt_type)
    if value is None or value == "query":
        return "query"
    if value in ("document", "passage"):
        return "passage"
    raise ConfigError(f"prompt_type={prompt_type!r}: expected mteb's 'query' or 'document'")


def _batch_texts(batch: Any) -> list[str]:
    if isinstance(batch, str):
        return [batch]
    if isinstance(batch, dict):
        if "text" not in batch:
            raise ConfigError(f"mteb batch without a 'text' field (fields: {sorted(batch)}); only text "
                              "tasks are supported")
        value = batch["text"]
        return [value] if isinstance(value, str) else [str(t) for t in value]
    return [str(t) for t in batch]


class MtebEncoder:
    """An :class:`lib.encoder.Encoder` behind mteb's encoder interface.

    mteb 2.x calls ``encode(inputs, *, task_metadata, hf_split, hf_subset,
    prompt_type, **kwargs)`` with a DataLoader whose batches are dicts with a
    ``"text"`` list (corpus batches: title and body already joined); mteb 1.x
    passes a list of sentences (and ``task_name``). Both work. ``prompt_type``
    query / document selects our query / passage role, so the e5 prefixes
    (``"query: "`` / ``"passage: "``) are added exactly as mteb's own e5
    wrapper does. Embeddings are L2-normalised float32 numpy arrays; the
    similarity is cosine.
    """

    def __init__(self, encoder, name: str = "", batch_size: int = 32, max_length: int = 512,
                 revision: str | None = None, **kwargs: Any):
        if isinstance(encoder, str):
            encoder = load_encoder(encoder, **kwargs)
        self.encoder = encoder
        self.name = name or getattr(encoder, "name", "") or "local-encoder"
        self.revision = revision or model_revision(encoder)
        self._meta = None
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.calls: list[tuple[str, int]] = []  # (role, n_texts) per encode call, for inspection

    def encode(self, inputs: Any, *, task_metadata: Any = None, hf_split: str | None = None,
               hf_subset: str | None = None, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        role = _role(prompt_type)
        if isinstance(inputs, str) or (isinstance(inputs, (list, tuple)) and all(isinstance(t, str) for t in inputs)):
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
        else:
            texts = [t for batch in inputs for t in _batch_texts(batch)]
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        show = kwargs.get("show_progress_bar")
        self.calls.append((role, len(texts)))
        return self.encoder.encode(texts, role, batch_size=batch_size, max_length=self.max_length,
                                   progress=show)

    @property
    def mteb_model_meta(self):
        """mteb's ``ModelMeta`` (name ``hybrid-batch-study/<name>``, revision = weights fingerprint).

        mteb reads it to name result folders and caches (``<name>/<revision>``);
        built on first use when mteb is installed, else None.
        """
        if self._meta is None and importlib.util.find_spec("mteb") is not None:
            self._meta = model_meta(self)
        return self._meta

    @mteb_model_meta.setter
    def mteb_model_meta(self, value) -> None:
        self._meta = value

    @staticmethod
    def similarity(embeddings1: Any, embeddings2: Any):
        """Cosine similarity matrix as a torch tensor (mteb's return type)."""
        a = torch.as_tensor(np.asarray(embeddings1, dtype=np.float32))
        b = torch.as_tensor(np.asarray(embeddings2, dtype=np.float32))
        a = torch.nn.functional.normalize(a.reshape(-1, a.shape[-1]), dim=-1)
        b = torch.nn.functional.normalize(b.reshape(-1, b.shape[-1]), dim=-1)
        return a @ b.T

    @staticmethod
    def similarity_pairwise(embeddings1: Any, embeddings2: Any):
        a = torch.nn.functional.normalize(torch.as_tensor(np.asarray(embeddings1, dtype=np.float32)), dim=-1)
        b = torch.nn.functional.normalize(torch.as_tensor(np.asarray(embeddings2, dtype=np.float32)), dim=-1)
        return (a * b).sum(-1)


def model_revision(encoder) -> str:
    """A short, stable revision for a model: the stored weights' sha256 when known, else a hash of the weights.

    Trained runs carry ``weights_sha256`` (lib.model_store); the embedded
    backbone its source file's sha256 and conversion version; the layer
    count is part of the identity (``num_layers`` truncation). Other models
    are hashed tensor by tensor (about a second for e5-small).
    """
    info = dict(getattr(encoder, "info", {}) or {})
    model = encoder.model
    ident = {"layers": int(model.config.num_hidden_layers), "pooling": getattr(encoder, "pooling", ""),
             "prefixes": [getattr(encoder, "query_prefix", ""), getattr(encoder, "passage_prefix", "")]}
    if info.get("weights_sha256"):
        ident["weights"] = info["weights_sha256"]
    elif info.get("source_sha256"):
        ident["source"] = [info["source_sha256"], info.get("conversion_version")]
    else:
        ident["tensors"] = {k: tensor_sha256(v) for k, v in model.state_dict().items()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _meta_class():
    """mteb 2.x: ``mteb.models.ModelMeta`` (``mteb.ModelMeta`` in early 2.0 pre-releases and 1.x)."""
    try:
        from mteb.models import ModelMeta
    except ImportError:
        import mteb
        ModelMeta = getattr(mteb, "ModelMeta", None)
        if ModelMeta is None:
            raise StudyError(f"mteb {getattr(mteb, '__version__', '?')} has neither mteb.models.ModelMeta nor "
                             "mteb.ModelMeta; install the version in requirements-mteb.txt") from None
    return ModelMeta


def model_meta(wrapper: MtebEncoder):
    """A ModelMeta naming the local model, so results land in ``<cache>/results/hybrid-batch-study__<name>/<revision>/``.

    Raises StudyError (naming the field) when this mteb's ModelMeta rejects
    the fields, instead of falling back to mteb's anonymous
    ``no_model_name/available``.
    """
    ModelMeta = _meta_class()
    encoder = wrapper.encoder
    model = encoder.model
    n_params = int(sum(p.numel() for p in model.parameters()))
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", wrapper.name).strip("_") or "local-encoder"
    base = str(encoder.info.get("base_name") or "")
    fields = dict(loader=None, name=f"{META_ORG}/{name}", revision=wrapper.revision, release_date=None,
                  languages=None, n_parameters=n_params,
                  n_embedding_parameters=int(embed.weight.numel()) if embed is not None else None,
                  memory_usage_mb=round(n_params * 4 / 2 ** 20, 1), max_tokens=wrapper.max_length,
                  embed_dim=int(model.config.hidden_size), license=None, open_weights=True,
                  public_training_code=None, public_training_data=None, framework=["PyTorch"], reference=None,
                  similarity_fn_name="cosine", use_instructions=bool(encoder.query_prefix or encoder.passage_prefix),
                  training_datasets=None, adapted_from=f"{META_ORG}/{base}" if base else None,
                  modalities=["text"])
    known = getattr(ModelMeta, "model_fields", None)
    if known is not None:  # pydantic 2: keep the fields this mteb version has
        fields = {k: v for k, v in fields.items() if k in known}
    try:
        return ModelMeta(**fields)
    except Exception as exc:  # noqa: BLE001 - re-raised with the cause named
        raise StudyError(f"mteb's ModelMeta rejected the local model's metadata ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); fields: {sorted(fields)}") from exc


class EmbeddingMemo:
    """An encoder that remembers every (role, text) -> vector it computed and serves repeats from memory.

    Attributes other than ``encode`` come from the wrapped encoder;
    ``misses`` counts texts that had to be encoded (reset it between uses).
    """

    def __init__(self, encoder):
        self.encoder = encoder
        self.vectors: dict[tuple[str, str], np.ndarray] = {}
        self.misses = 0

    def __getattr__(self, name: str):
        return getattr(self.__dict__["encoder"], name)

    def encode(self, texts: Sequence[str], role: str, **kwargs: Any) -> np.ndarray:
        texts = list(texts)
        todo = [t for t in dict.fromkeys(texts) if (role, t) not in self.vectors]
        if todo:
            self.vectors.update({(role, t): v for t, v in zip(todo, self.encoder.encode(todo, role, **kwargs))})
            self.misses += len(todo)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self.vectors[(role, t)] for t in texts])
